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
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import daxnet_testlib as tl  # noqa: E402
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def ensure_tclsh():
    if shutil.which("tclsh"):
        return
    print("valkey_suite: tclsh missing; running scripts/deps.sh", flush=True)
    subprocess.run([os.path.join(ROOT, "scripts", "deps.sh")], check=True)
    if not shutil.which("tclsh"):
        sys.exit("valkey_suite: tclsh still missing after scripts/deps.sh")


def run_unit(args, suite_copy, unit):
    # the pool on tmpfs when there is one: a file pool on a disk makes every
    # commit an msync (milliseconds), and the suite runs thousands unpipelined
    tmp = tempfile.mkdtemp(prefix="daxnet-valkey-", dir=tl.default_tmp())
    try:
        srv = tl.Server(args.bin_dir, "daxnet-kv", os.path.join(tmp, "pool"), args.transport, tmp,
                        pool_size="256M", start_deadline=30, verbose=False)
        try:
            port = srv.start().port("resp")
        except tl.TestFailure as e:
            sys.exit("valkey_suite: daxnet-kv did not start: %s" % e)
        # The harness's own control socket listens at baseport-32 (first free of
        # 32, and it also needs port+10000 free): a fixed base makes two copies
        # of the suite take the same port. Below the ephemeral range, and
        # port+10000 a valid port.
        base = random.randrange(20032, 30000, 64)
        cmd = ["tclsh", "tests/test_helper.tcl", "--host", "127.0.0.1", "--port", str(port), "--singledb",
               "--baseport", str(base), "--portcount", "32",
               "--clients", "1", "--timeout", "60", "--durable", "--dont-clean", "--ignore-encoding",
               "--ignore-digest", "--single", unit]
        try:
            r = subprocess.run(cmd, cwd=suite_copy, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=args.unit_timeout)
            text = r.stdout.decode(errors="replace")
        except subprocess.TimeoutExpired as e:
            text = (e.stdout or b"").decode(errors="replace") + "\n[valkey_suite: unit timed out]\n"
        alive = srv.alive()
        srv.terminate(20)
        return ANSI.sub("", text), alive, srv.output()
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
