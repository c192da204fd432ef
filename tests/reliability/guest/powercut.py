#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Guest side of the power-cut test (docs/reliability.md).

Runs in the QEMU guest with the pools on the emulated NVDIMM (ext4 -o dax,
MAP_SYNC). Every boot:
  1. starts daxnet-kv and daxnet-wal on the pools left by the boots before
     (recovery after the power cut);
  2. with --expect FILE (the host's record of what earlier boots
     acknowledged, read over 9p), verifies it, prints PC-VERIFIED or PC-FAIL;
  3. --mode load: runs write load until the host kills QEMU with kill -9.
     Writers are numbered per boot and write only values derived from
     (writer, n), so a value found later tells which write it was:
        KV   key pc<w>:<n mod K> = "pc<w>:<n>|" + filler(w, n)
        WAL  stream pc<w>, record n = "pc<w>:<n>|" + filler(w, n)
     After each acknowledged batch it prints on the serial console
        PC-A kv <w> <n>     every SET of writer w up to n acknowledged
        PC-A wal <w> <n>    records 0..n of stream pc<w> acknowledged
     The host keeps those lines. A line still in the guest's serial queue
     at the cut is lost, which only makes the check weaker, never wrong.
     --mode verify: stops the services cleanly after the check.

The check: a key whose last acknowledged write (known to the host) is n
must hold the value of write n or of a later write of the same writer to
that key (in flight at the cut); a key with no acknowledged write is absent
or holds a value of its writer; a value that is not exactly what its writer
wrote for that key is invented. A stream must hold records 0..n exactly, and
after them only records its writer wrote, in order.
"""

import argparse
import hashlib
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
import daxnet_testlib as tl  # noqa: E402  (Server, RESP and HTTP clients)
import killloop as kl  # noqa: E402  (the verifiers: kv_get_many, wal_read_stream)

KEYS = 64       # keys per KV writer
START_DEADLINE = 300    # recovery under TCG, CRC32C without SSE4.2
DEPTH = 8       # SETs per pipelined batch


def filler(w, n):
    h = hashlib.sha256(b"%d:%d" % (w, n)).digest()
    size = 1 + h[0] % 48 if h[1] < 200 else 300 + (h[2] << 4)   # some values span buffers
    return (h * (size // len(h) + 1))[:size]


def kv_value(w, n):
    return b"pc%d:%d|" % (w, n) + filler(w, n)


def kv_key(w, n):
    return "pc%d:%d" % (w, n % KEYS)


def wal_body(w, n):
    return b"pc%d:%d|" % (w, n) + filler(w + 1000, n)


def parse_value(v):
    m = re.match(rb"pc(\d+):(\d+)\|", v or b"")
    return (int(m.group(1)), int(m.group(2))) if m else None


_out_lock = threading.Lock()


def out(line):
    with _out_lock:   # one whole line at a time on the serial console
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def verify(expect, kport, hport):
    kv_acked, wal_acked = {}, {}
    with open(expect) as f:
        for line in f:
            p = line.split()
            if len(p) == 4 and p[0] == "PC-A":
                d = kv_acked if p[1] == "kv" else wal_acked
                d[int(p[2])] = max(d.get(int(p[2]), -1), int(p[3]))
    writers = sorted(set(kv_acked) | set(wal_acked))
    problems = []
    nkeys = nrec = 0
    for w in sorted(kv_acked):
        keys = [kv_key(w, i) for i in range(KEYS)]
        got = kl.kv_get_many(kport, keys)
        a = kv_acked[w]
        for i, k in enumerate(keys):
            nkeys += 1
            last = a - ((a - i) % KEYS) if a >= i else None   # last acknowledged n for this key
            v = got[k]
            pv = parse_value(v)
            if v is None:
                if last is not None:
                    problems.append("%s: acknowledged write %d lost" % (k, last))
            elif pv is None or pv[0] != w or pv[1] % KEYS != i or v != kv_value(w, pv[1]):
                problems.append("%s: holds %r, never written" % (k, v[:40]))
            elif last is not None and pv[1] < last:
                problems.append("%s: holds write %d, older than acknowledged %d" % (k, pv[1], last))
    for w in sorted(wal_acked):
        recs = kl.wal_read_stream(hport, "pc%d" % w, 1 << 30)
        a = wal_acked[w]
        nrec += len(recs)
        if len(recs) < a + 1:
            problems.append("stream pc%d: %d records, %d acknowledged" % (w, len(recs), a + 1))
        for n, r in enumerate(recs):
            if r != wal_body(w, n):
                problems.append("stream pc%d: record %d is not what was written" % (w, n))
                break
    if problems:
        out("PC-FAIL %d problems, e.g. %s" % (len(problems), "; ".join(problems[:5])))
        return False
    out("PC-VERIFIED writers=%d keys=%d records=%d acked_kv=%d acked_wal=%d lost=0" %
        (len(writers), nkeys, nrec, sum(v + 1 for v in kv_acked.values()), sum(v + 1 for v in wal_acked.values())))
    return True


def kv_writer(w, port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    r = tl.RespReader(s)
    n = 0
    while True:
        batch = [(kv_key(w, i), kv_value(w, i)) for i in range(n, n + DEPTH)]
        s.sendall(b"".join(tl.resp_encode("SET", k, v) for k, v in batch))
        for _ in batch:
            if r.read_reply() != "OK":
                out("PC-FAIL SET refused")
                return
        n += DEPTH
        out("PC-A kv %d %d" % (w, n - 1))


def wal_writer(w, port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    r = tl.HttpReader(s)
    n = 0
    while True:
        status, body = tl.http_post(s, r, "/log/pc%d" % w, wal_body(w, n))
        if status != 201:
            out("PC-FAIL POST answered %d" % status)
            return
        out("PC-A wal %d %d" % (w, n))
        n += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--dir", required=True, help="where the pools live (the DAX mount)")
    ap.add_argument("--mode", choices=("load", "verify"), required=True)
    ap.add_argument("--expect")
    ap.add_argument("--boot", type=int, default=0)
    ap.add_argument("--transport", default="kernel")
    args = ap.parse_args()
    def service(binary):
        return tl.Server(args.bin_dir, binary, os.path.join(args.dir, binary[7:] + ".pool"), args.transport,
                         args.dir, ["--require-dax"], pool_size="32M", start_deadline=START_DEADLINE,
                         verbose=False)
    kv = service("daxnet-kv")
    wal = service("daxnet-wal")
    try:
        t0 = time.monotonic()
        kv.start()
        wal.start()
        out("PC-STARTED boot=%d recovery_s=%.2f" % (args.boot, time.monotonic() - t0))
        if args.expect and os.path.exists(args.expect) and not verify(args.expect, kv.port("resp"),
                                                                       wal.port("http")):
            return 1
        if args.mode == "verify":
            kv.stop()
            wal.stop()
            return 0
        ts = [threading.Thread(target=kv_writer, args=(args.boot * 10 + i, kv.port("resp")), daemon=True)
              for i in range(2)]
        ts += [threading.Thread(target=wal_writer, args=(args.boot * 10 + i, wal.port("http")), daemon=True)
               for i in range(2)]
        for t in ts:
            t.start()
        out("PC-LOAD-RUNNING boot=%d" % args.boot)
        for t in ts:
            t.join(600)   # the host cuts the power long before
        return 1
    except tl.TestFailure as e:
        out("PC-FAIL %s" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
