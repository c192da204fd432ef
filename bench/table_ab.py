#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""The command table's cost: daxnet-kv SET/GET CPU per request, before and
after the Redis-style command table (issue 17's target: within 3 %).

    bench/table_ab.py --new-bin build/bin/daxnet-kv [--rounds 5] [--requests 200000]
    bench/table_ab.py --new 5b4cb61     # the table's own commit against its parent

Builds daxnet-kv at the commit before the table landed (the parent of the
commit that added examples/kv/cmd_table.cpp; --base to pick another) in a
scratch directory (default /tmp/daxnet-table-ab, reused when the binary is
there), starts it and the binary under test side by side on pools in
/dev/shm, and runs redis-benchmark SET and GET against each in turn,
alternating which goes first, --rounds times. The figure is the server's
on-CPU time (the sum of its threads' schedstat run time) per request: load
from other processes on the machine changes it much less than it changes
throughput. Prints the medians, the ratio new/base per operation and
whether it is within --limit (3 %); --md FILE writes the table as markdown.
Both servers run with one thread on the epoll transport, pinned to one
core, the client to another (taskset; --no-pin to leave them).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from benchlib import procs  # noqa: E402


def git(*args):
    return subprocess.run(["git", "-C", REPO] + list(args), check=True, stdout=subprocess.PIPE,
                          text=True).stdout.strip()


def default_base():
    added = git("log", "--diff-filter=A", "--format=%H", "--", "examples/kv/cmd_table.cpp").split()
    if not added:
        sys.exit("table_ab: no commit added examples/kv/cmd_table.cpp; give --base")
    return git("rev-parse", added[-1] + "^")


def build_base(sha, scratch, jobs):
    """daxnet-kv at `sha` (release build, no tests, no kernel module), built
    once in scratch/<sha>; returns the binary."""
    root = os.path.join(scratch, sha[:12])
    binary = os.path.join(root, "build", "bin", "daxnet-kv")
    if os.path.exists(binary):
        return binary
    src = os.path.join(root, "src")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(src)
    archive = subprocess.Popen(["git", "-C", REPO, "archive", sha], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", src], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        sys.exit("table_ab: git archive %s failed" % sha)
    build = os.path.join(root, "build")
    print("table_ab: building daxnet-kv at %s in %s" % (sha[:12], build), flush=True)
    subprocess.run(["cmake", "-S", src, "-B", build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                    "-DDAXNET_BUILD_TESTS=OFF", "-DDAXNET_BUILD_KERNEL=OFF"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["nice", "-n", "10", "cmake", "--build", build, "-j", str(jobs), "--target", "daxnet-kv"],
                   check=True, stdout=subprocess.DEVNULL)
    if not os.path.exists(binary):
        sys.exit("table_ab: the build of %s made no %s" % (sha[:12], binary))
    return binary


class Kv:
    def __init__(self, name, binary, tmp, cpu):
        self.name = name
        self.port = procs.free_port()
        pool = os.path.join(tmp, name + ".pool")
        argv = [binary, "--pool", pool, "--pool-size", "1G", "--port", str(self.port), "--bind", "127.0.0.1",
                "--transport", "epoll", "--threads", "1"]
        self.proc = procs.start(argv, os.path.join(tmp, name + ".log"), cpu=cpu)
        if not procs.wait_port(self.port, self.proc):
            with open(os.path.join(tmp, name + ".log"), errors="replace") as f:
                sys.exit("table_ab: %s did not start:\n%s" % (name, f.read()[-2000:]))

    def stop(self):
        procs.kill_group(self.proc)


def bench_once(kv, op, args, client_cpu):
    argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(kv.port), "-t", op.lower(), "-n", str(args.requests),
            "-c", str(args.conns), "-P", str(args.pipeline), "-d", str(args.size), "-r", "100000", "-q"]
    if client_cpu is not None:
        argv = ["taskset", "-c", str(client_cpu)] + argv
    before = procs.proc_runtime_seconds(kv.proc.pid)
    t0 = time.monotonic()
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    wall = time.monotonic() - t0
    cpu = procs.proc_runtime_seconds(kv.proc.pid) - before
    if r.returncode != 0 or "requests per second" not in r.stdout:
        sys.exit("table_ab: redis-benchmark against %s failed:\n%s" % (kv.name, r.stdout[-2000:]))
    return cpu / args.requests * 1e6, args.requests / wall


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--new-bin", default=os.path.join(REPO, "build", "bin", "daxnet-kv"))
    ap.add_argument("--new", help="build this commit as the binary under test instead of --new-bin "
                    "(e.g. the commit that added the table, to see its cost alone)")
    ap.add_argument("--base", help="commit of the baseline (default: the one before the command table)")
    ap.add_argument("--base-bin", help="a baseline binary already built (skips the build)")
    ap.add_argument("--scratch", default=os.path.join(tempfile.gettempdir(), "daxnet-table-ab"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--pipeline", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--limit", type=float, default=3.0, help="allowed CPU/request increase, percent")
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--md", help="also write the result table (markdown) here")
    args = ap.parse_args()
    if not shutil.which("redis-benchmark"):
        sys.exit("table_ab: redis-benchmark missing (Debian redis-tools)")
    base_sha = git("rev-parse", args.base) if args.base else default_base()
    base_bin = args.base_bin or build_base(base_sha, args.scratch, args.jobs)
    if args.new:
        new_sha = git("rev-parse", args.new)
        args.new_bin = build_base(new_sha, args.scratch, args.jobs)
    else:
        new_sha = None  # a binary given by path: its commit is unknown (not necessarily HEAD)
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    server_cpu, client_cpu = (0, 1) if pin else (None, None)
    tmp = tempfile.mkdtemp(prefix="daxnet-table-ab-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    servers = []
    try:
        servers = [Kv("base", base_bin, tmp, server_cpu), Kv("new", os.path.abspath(args.new_bin), tmp, server_cpu)]
        samples = {(s.name, op): [] for s in servers for op in ("SET", "GET")}
        rps = {(s.name, op): [] for s in servers for op in ("SET", "GET")}
        for rnd in range(args.rounds):
            order = servers if rnd % 2 == 0 else servers[::-1]
            for op in ("SET", "GET"):
                for s in order:
                    us, r = bench_once(s, op, args, client_cpu)
                    samples[(s.name, op)].append(us)
                    rps[(s.name, op)].append(r)
            print("table_ab: round %d/%d done" % (rnd + 1, args.rounds), flush=True)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    lines = ["| op | base CPU/request (us) | new CPU/request (us) | new / base | base req/s | new req/s |",
             "|---|---:|---:|---:|---:|---:|"]
    worst = 0.0
    for op in ("SET", "GET"):
        b = statistics.median(samples[("base", op)])
        n = statistics.median(samples[("new", op)])
        ratio = n / b
        worst = max(worst, ratio)
        lines.append("| %s | %.3f | %.3f | %.3f | %.0f | %.0f |" % (
            op, b, n, ratio, statistics.median(rps[("base", op)]), statistics.median(rps[("new", op)])))
    new_label = new_sha[:12] if new_sha else os.path.abspath(args.new_bin)
    head = ("daxnet-kv CPU per request, base %s vs new %s; redis-benchmark "
            "-c %d -P %d -d %d, %d requests, median of %d rounds (server pinned: %s)" % (
                base_sha[:12], new_label, args.conns, args.pipeline, args.size, args.requests, args.rounds,
                "yes" if pin else "no"))
    ok = worst <= 1.0 + args.limit / 100.0
    verdict = "within %.0f %%: %s (worst new/base %.3f)" % (args.limit, "yes" if ok else "NO", worst)
    text = head + "\n\n" + "\n".join(lines) + "\n\n" + verdict + "\n"
    print(text)
    for op in ("SET", "GET"):
        print("%s samples (us/request): base %s new %s" % (
            op, " ".join("%.3f" % v for v in samples[("base", op)]),
            " ".join("%.3f" % v for v in samples[("new", op)])))
    if args.md:
        with open(args.md, "w") as f:
            f.write(text)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
