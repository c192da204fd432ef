#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Runs units of the Valkey (Redis-family) test suite against daxnet-kv.

The suite lives beside the project (../shared/valkey-tests, test data, never
copied into the repository); it is copied to a scratch directory because the
harness writes under tests/tmp. Each unit runs against a fresh daxnet-kv on
a fresh pool, in the suite's external-server mode:

    valkey_suite.py --bin-dir build/bin --suite ../shared/valkey-tests \
        --unit unit/type/string:70 --unit unit/expire:50 ...

`unit:N` asserts that at least N tests of the unit pass (the level reached;
a regression fails the run). tclsh comes from Debian's tcl: when it is
missing, scripts/deps.sh installs it (as in CI).
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def ensure_tclsh():
    if shutil.which("tclsh"):
        return
    print("valkey_suite: tclsh missing; running scripts/deps.sh", flush=True)
    subprocess.run([os.path.join(ROOT, "scripts", "deps.sh")], check=True)
    if not shutil.which("tclsh"):
        sys.exit("valkey_suite: tclsh still missing after scripts/deps.sh")


def start_kv(bin_dir, tmp, transport, extra):
    pool = os.path.join(tmp, "pool")
    out_path = os.path.join(tmp, "kv.out")
    out = open(out_path, "wb")
    argv = [os.path.join(bin_dir, "daxnet-kv"), "--pool", pool, "--pool-size", "256M", "--port", "0",
            "--bind", "127.0.0.1", "--transport", transport] + extra
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    out.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(out_path, "rb") as f:
            m = re.search(rb"resp=[0-9.]+:(\d+)", f.read())
        if m:
            return proc, int(m.group(1)), out_path
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    with open(out_path, "rb") as f:
        sys.exit("valkey_suite: daxnet-kv did not start:\n" + f.read().decode(errors="replace"))


def run_unit(args, suite_copy, unit):
    # the pool on tmpfs when there is one: a file pool on a disk makes every
    # commit an msync (milliseconds), and the suite runs thousands unpipelined
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    tmp = tempfile.mkdtemp(prefix="daxnet-valkey-", dir=shm)
    try:
        proc, port, out_path = start_kv(args.bin_dir, tmp, args.transport, [])
        cmd = ["tclsh", "tests/test_helper.tcl", "--host", "127.0.0.1", "--port", str(port), "--singledb",
               "--clients", "1", "--timeout", "60", "--durable", "--dont-clean", "--ignore-encoding",
               "--ignore-digest", "--single", unit]
        try:
            r = subprocess.run(cmd, cwd=suite_copy, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=args.unit_timeout)
            text = r.stdout.decode(errors="replace")
        except subprocess.TimeoutExpired as e:
            text = (e.stdout or b"").decode(errors="replace") + "\n[valkey_suite: unit timed out]\n"
        alive = proc.poll() is None
        if alive:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with open(out_path, "rb") as f:
            server_out = f.read().decode(errors="replace")
        return ANSI.sub("", text), alive, server_out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--suite", default=os.path.join(os.path.dirname(ROOT), "shared", "valkey-tests"))
    ap.add_argument("--transport", default="epoll")
    ap.add_argument("--unit", action="append", required=True, help="unit/name[:min_pass]")
    ap.add_argument("--unit-timeout", type=float, default=240)
    ap.add_argument("--verbose", action="store_true", help="print every failing test")
    args = ap.parse_args()
    if not os.path.isdir(args.suite):
        sys.exit("valkey_suite: no suite at %s" % args.suite)
    ensure_tclsh()
    scratch = tempfile.mkdtemp(prefix="daxnet-valkey-suite-")
    suite_copy = os.path.join(scratch, "vk")
    failed = []
    try:
        shutil.copytree(args.suite, suite_copy)
        for spec in args.unit:
            unit, _, want = spec.partition(":")
            want = int(want) if want else 0
            t0 = time.monotonic()
            text, alive, server_out = run_unit(args, suite_copy, unit)
            ok = len(re.findall(r"^\[ok\]:", text, re.M))
            err = re.findall(r"^\[err\]: (.*)$", text, re.M)
            exc = re.findall(r"^\[exception\]: (.*)$", text, re.M)
            print("%-22s passed %3d  failed %3d%s  (want >= %d, %.0f s)" %
                  (unit, ok, len(err), "  EXCEPTION" if exc else "", want, time.monotonic() - t0), flush=True)
            if args.verbose:
                for e in err:
                    print("    err: " + e)
            if not alive:
                failed.append("%s: daxnet-kv died:\n%s" % (unit, server_out[-3000:]))
            if ok < want:
                failed.append("%s: %d passed, fewer than %d\n%s" % (unit, ok, want, text[-4000:]))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if failed:
        print("\n".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
