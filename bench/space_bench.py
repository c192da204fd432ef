#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Space efficiency of daxnet-kv after a fragmenting workload, with and
without the cleaner (docs/wal-format.md, "The cleaner").

    bench/space_bench.py                      # every size, uring and epoll
    bench/space_bench.py --sizes 16,1024 --transports epoll --budget 32M

For each transport, value size and cleaner setting, one fresh daxnet-kv on a
pool in /dev/shm: SET `budget / size` distinct keys (at most --max-keys),
pipelined 64 deep; DEL three keys of every four (interleaved, so every
buffer keeps some live data); SAVE (a checkpoint: what was deleted comes
back where whole buffers were freed); then drive the event loop with
PINGs until the cleaner and the checkpoints it asks for have settled.
The figure is

    pool bytes per live payload byte =
        (pool_buffers - pool_buffers_free) * buffer_size / live_payload_bytes

read from INFO (live_payload_bytes: value bytes the store holds; keys are
not counted as payload). Buffers the transport keeps for receiving count
as used, so small totals read high; the same workload runs in both
columns. Python 3 standard library only.
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def resp_cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Client:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise RuntimeError("server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self._line()
        t = line[:1]
        if t == b"$":
            n = int(line[1:])
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.s.recv(1 << 20)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if t == b"-":
            return RuntimeError(line[1:].decode())
        return line[1:]

    def pipeline(self, cmds, depth=64):
        """Sends cmds `depth` at a time; returns the number of error replies."""
        errors = 0
        for i in range(0, len(cmds), depth):
            batch = cmds[i:i + depth]
            self.s.sendall(b"".join(batch))
            for _ in batch:
                if isinstance(self.reply(), RuntimeError):
                    errors += 1
        return errors

    def info(self):
        self.s.sendall(resp_cmd("INFO"))
        text = self.reply().decode()
        return {k: v for k, v in re.findall(r"^(\w+):(\S*)\r?$", text, re.M)}


def find_binary(build):
    for p in (os.path.join(build, "bin", "daxnet-kv"), shutil.which("daxnet-kv")):
        if p and os.path.exists(p):
            return p
    sys.exit("daxnet-kv not found: build first (scripts/build.sh ci) or pass --build")


def start(binary, pool, transport, cleaner, pool_size):
    argv = [binary, "--pool", pool, "--pool-size", pool_size, "--port", "0", "--transport", transport,
            "--cleaner", "true" if cleaner else "false"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"resp=[\d.]+:(\d+)", line)
        if m:
            return proc, int(m.group(1))
    proc.kill()
    raise RuntimeError("daxnet-kv did not start: " + " ".join(argv))


def value_of(i, size):
    pat = (b"%08d" % i) * (size // 8 + 1)
    return pat[:size]


def run_one(binary, tmp, transport, size, cleaner, args):
    pool = os.path.join(tmp, "space-%s-%d-%d.pool" % (transport, size, cleaner))
    proc, port = start(binary, pool, transport, cleaner, args.pool_size)
    try:
        c = Client(port)
        n = max(8, min(args.max_keys, args.budget // size))
        depth = 64 if size <= 65536 else 4
        refused = c.pipeline([resp_cmd("SET", "k:%08d" % i, value_of(i, size)) for i in range(n)], depth)
        c.pipeline([resp_cmd("DEL", "k:%08d" % i) for i in range(n) if i % 4], 256)
        c.pipeline([resp_cmd("SAVE")], 1)  # a checkpoint: the deleted values' buffers come back
        # Let the cleaner and the checkpoints settle: PINGs drive passes.
        last, stable = None, 0
        deadline = time.monotonic() + args.settle
        while time.monotonic() < deadline and stable < 3:
            # One PING per pass: the cleaner takes one bounded step per
            # event-loop pass (its victim scan too, spread over passes).
            c.pipeline([resp_cmd("PING")] * 300, 1)
            inf = c.info()
            cur = (inf.get("daxnet_pool_buffers_free"), inf.get("daxnet_cleaner_moved_entries"),
                   inf.get("daxnet_checkpoint_pending"))
            stable = stable + 1 if cur == last and cur[2] == "0" else 0
            last = cur
        inf = c.info()
        bufs = int(inf["daxnet_pool_buffers"])
        free = int(inf["daxnet_pool_buffers_free"])
        bsize = args.buffer_size
        live = int(inf.get("daxnet_live_payload_bytes", "0"))
        return dict(transport=transport, size=size, cleaner=cleaner, keys=n, refused=refused,
                    used_bytes=(bufs - free) * bsize, live=live,
                    ratio=((bufs - free) * bsize / live) if live else float("nan"),
                    moved=int(inf.get("daxnet_cleaner_moved_entries", "0")),
                    freed=int(inf.get("daxnet_cleaner_freed_buffers", "0")))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if os.path.exists(pool):
            os.unlink(pool)


def parse_size(s):
    m = re.fullmatch(r"(\d+)([KMG]?)i?B?", s.strip(), re.I)
    if not m:
        raise argparse.ArgumentTypeError("bad size " + s)
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2).upper()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--transports", default="uring,epoll")
    ap.add_argument("--sizes", default="16,100,1K,4K,64K,1M")
    ap.add_argument("--budget", type=parse_size, default=parse_size("64M"),
                    help="bytes of values written per run (before the deletes)")
    ap.add_argument("--max-keys", type=int, default=100000)
    ap.add_argument("--pool-size", default="256M")
    ap.add_argument("--buffer-size", type=int, default=4096)
    ap.add_argument("--settle", type=float, default=60.0, help="seconds to let the cleaner settle, at most")
    args = ap.parse_args()
    binary = find_binary(args.build)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    rows = []
    tmp = tempfile.mkdtemp(prefix="daxbench-space-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    try:
        for t in args.transports.split(","):
            for size in sizes:
                for cleaner in (False, True):
                    r = run_one(binary, tmp, t, size, cleaner, args)
                    rows.append(r)
                    print("  %-6s %8d B  cleaner=%-3s keys=%-7d live=%-10d used=%-10d ratio=%.2f moved=%d freed=%d"
                          " refused=%d" % (t, size, "on" if cleaner else "off", r["keys"], r["live"],
                                           r["used_bytes"], r["ratio"], r["moved"], r["freed"], r["refused"]),
                          file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\nPool bytes per live payload byte after SET + DEL of 3 keys in 4 (lower is better)\n")
    print("| transport | cleaner | " + " | ".join(_h(s) for s in sizes) + " |")
    print("|---|---|" + "---:|" * len(sizes))
    for t in args.transports.split(","):
        for cleaner in (False, True):
            cells = []
            for s in sizes:
                r = next(x for x in rows if x["transport"] == t and x["size"] == s and x["cleaner"] == cleaner)
                cells.append("%.2f" % r["ratio"])
            print("| %s | %s | %s |" % (t, "on" if cleaner else "off", " | ".join(cells)))


def _h(s):
    if s >= 1 << 20:
        return "%d MiB" % (s >> 20)
    if s >= 1 << 10:
        return "%d KiB" % (s >> 10)
    return "%d B" % s


if __name__ == "__main__":
    main()
