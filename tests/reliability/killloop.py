#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""kill -9 loop for daxnet-kv and daxnet-wal (docs/reliability.md).

Each cycle, on the same two pool files:
  1. start daxnet-kv and daxnet-wal on the chosen transport;
  2. load them concurrently: redis-benchmark (SET, random keys), writer
     threads of our own that pipeline SETs over a private key space and log
     every acknowledged SET key=value, and HTTP writers that append records
     to their own streams and log every acknowledged append, and, as a
     consumer would, trim their streams now and then (DELETE ?before=N);
  3. kill -9 both servers at a random moment under that load;
  4. restart them (recovery) and verify:
       KV:  every key holds its last acknowledged value or a value issued
            after it (a SET in flight when the kill came); a key never
            acknowledged is absent or holds an issued value; benchmark keys
            hold exactly the benchmark's value or are absent; no value was
            invented;
       WAL: every stream starts at the last acknowledged trim or a trim
            in flight (never below an acknowledged one, never at a position
            no trim named) and holds every acknowledged record from there,
            byte for byte and in order, followed by at most the records in
            flight; nothing else.
     What recovery returned becomes the baseline of the next cycle (it was
     made durable, so it must survive the next kill too).

    killloop.py --bin-dir build/bin --transport epoll --cycles 10
    killloop.py --bin-dir build/bin --transport uring --soak --conns 10000 --duration 60

Exit status 0 when every cycle verified. Prints one line per cycle and a
final summary line:  RESULT transport=T cycles=N acked_sets=... lost=0 ...
"""

import argparse
import os
import random
import re
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from daxnet_testlib import (HttpReader, RespReader, Server, TestFailure, http_post,  # noqa: E402
                            http_response, log, resp_encode)

START_DEADLINE = 30.0   # powercut.py (guest, recovery under TCG) raises it


def service(bin_dir, binary, pool, transport, tmp, extra=()):
    """A daxnet-kv or daxnet-wal on a 256 MiB pool, quiet (restarted every cycle)."""
    return Server(bin_dir, binary, pool, transport, tmp, extra, pool_size="256M",
                  start_deadline=START_DEADLINE, verbose=False)


# ------------------------------------------------------------------ RESP


def kv_get_many(port, keys, timeout=30):
    """GETs in pipelined batches; returns {key: value or None}."""
    out = {}
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    r = RespReader(s)
    try:
        for i in range(0, len(keys), 256):
            part = keys[i:i + 256]
            s.sendall(b"".join(resp_encode("GET", k) for k in part))
            for k in part:
                v = r.read_reply()
                if isinstance(v, Exception):
                    raise v
                out[k] = v
    finally:
        s.close()
    return out


# ------------------------------------------------------------------ KV model


class KeyState:
    """What a key may hold: the baseline (last acknowledged or recovered
    value, None = absent) or any value issued after it."""

    __slots__ = ("base", "later")

    def __init__(self):
        self.base = None
        self.later = []


class KvWriter(threading.Thread):
    """One connection, pipelined SETs over keys kw<id>:<n>; logs acks."""

    def __init__(self, wid, port, model, nkeys, depth, rng, acklog):
        super().__init__(daemon=True)
        self.wid, self.port, self.model, self.nkeys, self.depth = wid, port, model, nkeys, depth
        self.rng = rng
        self.acklog = acklog
        self.acked = 0
        self.issued = 0
        self.error = None
        self.seq = 0

    def value(self, key):
        self.seq += 1
        roll = self.rng.random()
        size = self.rng.randint(1, 48) if roll < 0.7 else self.rng.randint(100, 1500) if roll < 0.97 \
            else self.rng.randint(4000, 12000)   # spans several pool buffers
        head = ("%s=%d:%d|" % (key, self.wid, self.seq)).encode()
        pad = bytes(self.rng.getrandbits(8) for _ in range(min(size, 64)))
        return (head + pad * (size // max(len(pad), 1) + 1))[:max(size, len(head))]

    def run(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            r = RespReader(s)
            while True:
                batch = []
                for _ in range(self.depth):
                    k = "kw%d:%d" % (self.wid, self.rng.randrange(self.nkeys))
                    v = self.value(k)
                    batch.append((k, v))
                with self.model.lock:
                    for k, v in batch:
                        self.model.keys.setdefault(k, KeyState()).later.append(v)
                self.issued += len(batch)
                s.sendall(b"".join(resp_encode("SET", k, v) for k, v in batch))
                for k, v in batch:
                    rep = r.read_reply()
                    if rep != "OK":
                        self.error = "SET %s answered %r" % (k, rep)
                        return
                    with self.model.lock:
                        st = self.model.keys[k]
                        i = st.later.index(v)
                        st.base = v            # acknowledged: the new baseline
                        del st.later[:i + 1]   # values issued before it are superseded
                    self.acked += 1
                    self.acklog.write(b"SET %s %d\n" % (k.encode(), len(v)))
        except (ConnectionError, OSError):
            return  # the server was killed


class KvModel:
    def __init__(self):
        self.lock = threading.Lock()
        self.keys = {}


# ------------------------------------------------------------------ WAL model


def http_trim(sock, reader, name, before):
    """DELETE /log/<name>?before=N: the consumer is done with records below N."""
    sock.sendall(b"DELETE /log/%s?before=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (name.encode(), before))
    return http_response(reader)


class StreamState:
    def __init__(self):
        self.base = 0       # position of records[0]: the stream's first retained record
        self.records = []   # durable baseline (verified after the last restart)
        self.acked = 0      # end of the acknowledged records (position; prefix of records + inflight)
        self.inflight = []  # issued after the baseline, in order
        self.trims = []     # trim targets issued after the baseline, in order
        self.trim_acked = 0 # the stream's first position may not be below this

    def end(self):
        return self.base + len(self.records) + len(self.inflight)


class WalWriter(threading.Thread):
    """Appends to its own stream and, like a consumer that is done with old
    records, trims it now and then (every 100-400 appends, keeping the last
    0-300), so the pool's space comes back and trims are killed in flight."""

    def __init__(self, wid, port, state, rng, acklog):
        super().__init__(daemon=True)
        self.wid, self.port, self.state, self.rng, self.acklog = wid, port, state, rng, acklog
        self.acked = 0
        self.trims = 0
        self.error = None

    def trim(self, s, r):
        st = self.state
        target = st.acked - self.rng.randint(0, 300)
        if target <= max(st.trim_acked, st.base):
            return True
        st.trims.append(target)
        status, reply = http_trim(s, r, "rw%d" % self.wid, target)
        if status != 200 or reply.strip() != b"%d" % target:
            self.error = "DELETE ?before=%d answered %d %r" % (target, status, reply[:100])
            return False
        st.trim_acked = target
        self.trims += 1
        self.acklog.write(b"TRIM rw%d %d\n" % (self.wid, target))
        return True

    def run(self):
        st = self.state
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            r = HttpReader(s)
            next_trim = self.rng.randint(100, 400)
            while True:
                next_trim -= 1
                if next_trim <= 0:
                    next_trim = self.rng.randint(100, 400)
                    if not self.trim(s, r):
                        return
                n = st.end()
                size = self.rng.randint(1, 64) if self.rng.random() < 0.8 else self.rng.randint(1000, 9000)
                body = (b"rw%d:%d|" % (self.wid, n) + b"%c" % (65 + n % 26) * size)
                st.inflight.append(body)
                status, reply = http_post(s, r, "/log/rw%d" % self.wid, body)
                if status != 201:
                    self.error = "POST answered %d %r" % (status, reply[:100])
                    return
                seq = re.search(rb"\d+", reply)
                if seq is None or int(seq.group(0)) != n:
                    self.error = "POST got seq %r, expected %d" % (reply[:60], n)
                    return
                st.acked = n + 1
                self.acked += 1
                self.acklog.write(b"APPEND rw%d %d %d\n" % (self.wid, n, len(body)))
        except (ConnectionError, OSError):
            return


def wal_read_stream_at(port, name, expect_max):
    """The retained records of a stream: (first position, list of bodies)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    r = HttpReader(s)
    out = []
    first = None
    try:
        while True:
            path = "/log/%s?from=%d&limit=1000" % (name, (first or 0) + len(out))
            s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
            status, body, head = http_response(r, want_head=True)
            if status == 404:
                return 0, out
            if status != 200:
                raise TestFailure("GET %s: %d %r" % (path, status, body[:200]))
            if first is None:
                m = re.search(r"(?im)^x-daxnet-first:\s*(\d+)", head)
                if m is None:
                    raise TestFailure("GET %s: no X-Daxnet-First header" % path)
                first = int(m.group(1))
            got = 0
            i = 0
            while i < len(body):
                j = body.index(b"\n", i)
                seq_s, len_s = body[i:j].split(b" ")
                seq, n = int(seq_s), int(len_s)
                if seq != first + len(out):
                    raise TestFailure("stream %s: record %d where %d was expected" % (name, seq, first + len(out)))
                out.append(body[j + 1:j + 1 + n])
                i = j + 1 + n + 1
                got += 1
            if got == 0 or len(out) > expect_max:
                return first, out
    finally:
        s.close()


def wal_read_stream(port, name, expect_max):
    """The retained records of a stream (list of bodies) of a never-trimmed stream."""
    first, out = wal_read_stream_at(port, name, expect_max)
    if first != 0:
        raise TestFailure("stream %s starts at %d: it was trimmed" % (name, first))
    return out


# ------------------------------------------------------------------ the loop


def kill_cycle(args, cyc, rng, kv, wal, kvm, streams, tmp, totals):
    kv.start()
    wal.start()
    kport, hport = kv.port("resp"), wal.port("http")
    acklog = open(os.path.join(tmp, "acked.%d.log" % cyc), "wb")
    bench = None
    if shutil.which("redis-benchmark") and not args.no_benchmark:
        bench = subprocess.Popen(["redis-benchmark", "-h", "127.0.0.1", "-p", str(kport), "-t", "set", "-n",
                                  "100000000", "-r", str(args.bench_keys), "-d", str(args.bench_size), "-c", "8",
                                  "-P", "4", "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    writers = [KvWriter(w, kport, kvm, args.keys, args.depth, random.Random(rng.random()), acklog)
               for w in range(args.kv_writers)]
    wwriters = [WalWriter(w, hport, streams[w], random.Random(rng.random()), acklog)
                for w in range(args.wal_writers)]
    try:
        return load_and_kill(args, cyc, rng, kv, wal, kvm, streams, totals, acklog, bench, writers, wwriters)
    finally:
        if bench and bench.poll() is None:
            bench.kill()
            bench.wait(10)


def load_and_kill(args, cyc, rng, kv, wal, kvm, streams, totals, acklog, bench, writers, wwriters):
    for t in writers + wwriters:
        t.start()
    time.sleep(args.min_load + rng.random() * (args.max_load - args.min_load))
    if not kv.alive() or not wal.alive():
        raise TestFailure("a server died under load:\n%s\n%s" % (kv.output()[-2000:], wal.output()[-2000:]))
    # kill -9 both at the same moment, under load
    kv.kill9()
    wal.kill9()
    for t in writers + wwriters:
        t.join(20)
        if t.is_alive():
            raise TestFailure("a writer did not notice the kill")
    if bench:
        bench.kill()
        bench.wait(10)
    acklog.close()
    errs = [t.error for t in writers + wwriters if t.error]
    if errs:
        raise TestFailure("writers saw errors before the kill: %s" % errs[:3])
    acked_sets = sum(t.acked for t in writers)
    acked_appends = sum(t.acked for t in wwriters)
    acked_trims = sum(t.trims for t in wwriters)

    # restart: recovery
    t0 = time.monotonic()
    kv.start()
    wal.start()
    recovery_s = time.monotonic() - t0

    # ---- verify KV
    keys = sorted(kvm.keys)
    got = kv_get_many(kv.port("resp"), keys)
    lost, invented, inflight_kept = [], [], 0
    for k in keys:
        st = kvm.keys[k]
        v = got[k]
        if v == st.base:
            pass
        elif v is not None and v in st.later:
            inflight_kept += 1
        elif st.base is not None and v != st.base and v not in st.later:
            (lost if v is None else invented).append(k)
        else:
            invented.append(k)
    if lost or invented:
        k = (lost + invented)[0]
        raise TestFailure("cycle %d: %d acknowledged keys lost, %d hold a value never written; e.g. %s: got %r, "
                      "acked %r, in flight %d" % (cyc, len(lost), len(invented), k, (got[k] or b"")[:60],
                                                   (kvm.keys[k].base or b"")[:60], len(kvm.keys[k].later)))
    for k in keys:  # what recovery returned is the baseline now
        kvm.keys[k].base = got[k]
        kvm.keys[k].later = []
    bkeys = ["key:%012d" % rng.randrange(args.bench_keys) for _ in range(200)]
    bgot = kv_get_many(kv.port("resp"), bkeys)
    # redis-benchmark sends one value (pseudo-random bytes from a fixed
    # seed) for every SET of a run: every benchmark key holds that value.
    for v in bgot.values():
        if v is not None and totals.get("bench_value") is None and len(v) == args.bench_size:
            totals["bench_value"] = v
    bad = [k for k, v in bgot.items() if v is not None and v != totals.get("bench_value")]
    if bad:
        raise TestFailure("cycle %d: benchmark key %s holds %r" % (cyc, bad[0], bgot[bad[0]][:60]))

    # ---- verify WAL
    wal_lost = 0
    for w, st in enumerate(streams):
        first, recs = wal_read_stream_at(wal.port("http"), "rw%d" % w, len(st.records) + len(st.inflight))
        # The first retained position is the baseline's or an issued trim's,
        # and no lower than the last acknowledged trim.
        if first not in [st.base] + st.trims or first < max(st.base, st.trim_acked):
            raise TestFailure("cycle %d: stream rw%d starts at %d; baseline %d, trims issued %s, last acknowledged %d" %
                          (cyc, w, first, st.base, st.trims[-3:], st.trim_acked))
        end = first + len(recs)
        issued = (st.records + st.inflight)[first - st.base:]
        if end < st.acked:
            wal_lost += st.acked - end
        if end > st.end() or recs != issued[:len(recs)] or end < st.acked:
            first_bad = next((i for i, (a, b) in enumerate(zip(recs, issued)) if a != b), min(len(recs), len(issued)))
            raise TestFailure("cycle %d: stream rw%d holds records %d..%d, %d acknowledged, %d issued; first difference "
                          "at record %d" % (cyc, w, first, end, st.acked, st.end(), first + first_bad))
        st.base = first
        st.records = recs
        st.inflight = []
        st.trims = []
        st.trim_acked = first
        st.acked = end

    kv.stop()
    wal.stop()
    totals["acked_sets"] += acked_sets
    totals["acked_appends"] += acked_appends
    totals["acked_trims"] += acked_trims
    totals["inflight_kept"] += inflight_kept
    totals["keys"] = len(keys)
    totals["records"] = sum(len(s.records) for s in streams)
    totals["trimmed"] = sum(s.base for s in streams)
    totals["max_recovery_s"] = max(totals["max_recovery_s"], recovery_s)
    log("cycle %3d: %5d SETs, %4d appends and %2d trims acknowledged before kill -9; all present after restart "
        "(%d in-flight kept; %d keys, %d records retained, %d trimmed; restart %.2f s)" %
        (cyc, acked_sets, acked_appends, acked_trims, inflight_kept, len(keys), totals["records"],
         totals["trimmed"], recovery_s))


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(n, soft), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def soak(args, tmp):
    """Many concurrent connections, mixed SET/GET, bounded time; memory flat;
    then kill -9 and every acknowledged SET is there."""
    limit = raise_nofile(args.conns + 1024)
    if limit < args.conns + 256:
        raise TestFailure("RLIMIT_NOFILE hard limit %d is too low for %d connections" % (limit, args.conns))
    kv = service(args.bin_dir, "daxnet-kv", os.path.join(tmp, "soak.pool"), args.transport, tmp)
    try:
        soak_run(args, kv)
    finally:
        kv.kill9()


def soak_run(args, kv):
    kv.start()
    port = kv.port("resp")
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(args.conns):
        s = socket.socket()
        s.setblocking(True)
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        conns.append({"sock": s, "buf": b"", "want": 0, "key": None, "val": None, "op": None, "i": i, "n": 0})
        sel.register(s, selectors.EVENT_READ, conns[-1])
    rss0 = kv.rss_kib()
    acked = {}
    rng = random.Random(args.seed)
    rounds = 0
    errors = 0
    rss_samples = []
    t_end = time.monotonic() + args.duration
    while time.monotonic() < t_end:
        # one request on every connection, then collect every reply
        for c in conns:
            c["n"] += 1
            if rng.random() < 0.5:
                c["op"], c["key"] = "SET", "soak:%d" % c["i"]
                c["val"] = b"%d:%d" % (c["i"], c["n"])
                msg = resp_encode("SET", c["key"], c["val"])
            else:
                c["op"], c["key"] = "GET", "soak:%d" % c["i"]
                msg = resp_encode("GET", c["key"])
            c["sock"].sendall(msg)
            c["want"] = 1
        pending = len(conns)
        deadline = time.monotonic() + 60
        while pending:
            if time.monotonic() > deadline:
                raise TestFailure("soak: %d connections got no reply within 60 s" % pending)
            for key, _ in sel.select(timeout=1):
                c = key.data
                try:
                    d = c["sock"].recv(65536)
                except BlockingIOError:
                    continue
                if not d:
                    raise TestFailure("soak: the server closed connection %d (of %d)" % (c["i"], len(conns)))
                c["buf"] += d
                if c["want"] and b"\r\n" in c["buf"]:
                    line = c["buf"].split(b"\r\n", 1)[0]
                    if line.startswith(b"$") and int(line[1:]) >= 0:
                        n = int(line[1:])
                        if len(c["buf"]) < len(line) + 2 + n + 2:
                            continue
                        val = c["buf"][len(line) + 2:len(line) + 2 + n]
                        c["buf"] = c["buf"][len(line) + 4 + n:]
                        if val != acked.get(c["key"]):
                            errors += 1
                    else:
                        c["buf"] = c["buf"][len(line) + 2:]
                        if c["op"] == "SET" and line == b"+OK":
                            acked[c["key"]] = c["val"]
                        elif line.startswith(b"-"):
                            errors += 1
                        elif c["op"] == "GET" and line == b"$-1" and c["key"] in acked:
                            errors += 1
                    c["want"] = 0
                    pending -= 1
        rounds += 1
        rss_samples.append(kv.rss_kib())
    held = len(conns)
    kv.kill9()
    for c in conns:
        c["sock"].close()
    kv.start()
    got = kv_get_many(kv.port("resp"), sorted(acked))
    lost = [k for k, v in acked.items() if got.get(k) != v]
    kv.stop()
    warm = rss_samples[len(rss_samples) // 2] if rss_samples else rss0
    last = rss_samples[-1] if rss_samples else rss0
    log("RESULT soak transport=%s connections=%d rounds=%d requests=%d errors=%d acked_sets=%d lost=%d "
        "rss_kib start=%d mid=%d end=%d" % (args.transport, held, rounds, rounds * held, errors, len(acked),
                                            len(lost), rss0, warm, last))
    if errors or lost:
        raise TestFailure("soak: %d errors, %d acknowledged SETs lost" % (errors, len(lost)))
    # memory flat: after warm-up, growth bounded (no per-request leak)
    if rounds >= 4 and last > warm * 1.25 + 8192:
        raise TestFailure("soak: server RSS grew from %d KiB to %d KiB in the second half" % (warm, last))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--transport", default=os.environ.get("DAXNET_TEST_TRANSPORT", "epoll"))
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keys", type=int, default=400, help="keys per KV writer")
    ap.add_argument("--kv-writers", type=int, default=3)
    ap.add_argument("--wal-writers", type=int, default=2)
    ap.add_argument("--depth", type=int, default=16, help="SETs pipelined per round trip")
    ap.add_argument("--bench-keys", type=int, default=20000)
    ap.add_argument("--bench-size", type=int, default=32)
    ap.add_argument("--no-benchmark", action="store_true")
    ap.add_argument("--min-load", type=float, default=0.3, help="seconds of load before the kill, at least")
    ap.add_argument("--max-load", type=float, default=1.2)
    ap.add_argument("--soak", action="store_true", help="run the connection soak instead of the kill loop")
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    args.seed = seed
    rng = random.Random(seed)
    tmp = tempfile.mkdtemp(prefix="daxnet-killloop-")
    log("killloop: transport=%s cycles=%d seed=%d tmp=%s" % (args.transport, args.cycles, seed, tmp))
    kv = wal = None
    ok = False
    try:
        if args.soak:
            soak(args, tmp)
            ok = True
            return 0
        kv = service(args.bin_dir, "daxnet-kv", os.path.join(tmp, "kv.pool"), args.transport, tmp)
        wal = service(args.bin_dir, "daxnet-wal", os.path.join(tmp, "wal.pool"), args.transport, tmp)
        kvm = KvModel()
        streams = [StreamState() for _ in range(args.wal_writers)]
        totals = {"acked_sets": 0, "acked_appends": 0, "acked_trims": 0, "inflight_kept": 0, "keys": 0,
                  "records": 0, "trimmed": 0, "max_recovery_s": 0.0}
        t0 = time.monotonic()
        for cyc in range(1, args.cycles + 1):
            kill_cycle(args, cyc, rng, kv, wal, kvm, streams, tmp, totals)
        log("RESULT kill9 transport=%s cycles=%d survived=%d acked_sets=%d acked_appends=%d acked_trims=%d "
            "lost=0 invented=0 inflight_kept=%d keys=%d records=%d trimmed=%d max_restart_s=%.2f seconds=%.0f "
            "seed=%d" %
            (args.transport, args.cycles, args.cycles, totals["acked_sets"], totals["acked_appends"],
             totals["acked_trims"], totals["inflight_kept"], totals["keys"], totals["records"], totals["trimmed"],
             totals["max_recovery_s"], time.monotonic() - t0, seed))
        ok = True
        return 0
    except TestFailure as e:
        log("FAIL (seed %d): %s" % (seed, e))
        return 1
    finally:
        for s in (kv, wal):
            if s is not None:
                s.kill9()
        if ok and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log("kept %s" % tmp)


if __name__ == "__main__":
    sys.exit(main())
