#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Smoke test of the guest bench's host side (CTest bench_guest_collect, label bench).

Feeds bench/guest/collect.py --icount a synthetic console log (two runs of
rpc100 on the kernel transport and epoll, and one profile) and checks the
tables it writes: per-run values, spread, the ratio per run and its target
verdict, and the profile's layers scaled to the measured CPU per request.
Also checks icount_bench.classify() on hand-made call chains and
fold_script() on perf-script text. No guest is booted (that takes minutes;
bench/guest/host-bench.sh --icount is run by hand).
"""

import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import collect  # noqa: E402
import icount_bench as ib  # noqa: E402

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL: " + what)


def row(workload, transport, run, ns, sys_per_req):
    return "DAXNET-ICOUNT-ROW " + json.dumps({
        "workload": workload, "suite": workload[:3], "conns": 100, "transport": transport, "run": run,
        "requests": 1000, "server_ns_per_req": ns, "client_ns_per_req": 100.0, "other_ns_per_req": 1.0,
        "syscalls_per_req": sys_per_req, "fences_per_req": 0.0, "copied_per_req": 187.0, "rps_virt": 1000.0})


def main():
    # classification
    check(ib.classify("server;kernel;dx:daxnet_sync;do_syscall_64")[1] == "daxnet sync: own code",
          "a daxnet.ko frame classifies as daxnet sync")
    check(ib.classify("server;kernel;copyout;skb_copy_datagram_iter;tcp_recvmsg;dx:daxnet_sync")[1] ==
          "TCP receive (copy out of the socket)", "tcp_recvmsg under daxnet is TCP receive")
    check(ib.classify("server;kernel;tcp_v4_rcv;net_rx_action;__do_softirq;tcp_sendmsg")[1] ==
          "softirq: loopback delivery to the peer", "softirq wins over the send path")
    check(ib.classify("client;libc.so.6;__memmove_avx_unaligned")[1] == "app: libc (memcpy, ...)",
          "a libc leaf is app: libc")
    check(ib.classify("server;libpmem2.so.1;pmem2_flush")[1] == "persist: libpmem2 flush/fence",
          "a libpmem2 leaf is persist")
    check(ib.classify("server;kernel;entry_SYSCALL_64")[1] == "syscall entry/exit", "entry code")
    # perf script text -> folded stacks
    text = ("  42     500000 \n\tffffffffc0001000 daxnet_sync+0x10 ([kernel.kallsyms])\n"
            "\tffffffffb1043e1d do_syscall_64+0x5d ([kernel.kallsyms])\n\n"
            "  7     500000 \n\t          1234 main (/usr/bin/wrk)\n\n")
    folded = ib.fold_script(text, 42, 7, {"daxnet_sync"})
    check(folded == {"server;kernel;dx:daxnet_sync;do_syscall_64": 500000, "client;wrk;main": 500000},
          "fold_script: %r" % folded)
    # collect.py --icount on a synthetic log
    lines = [
        "DAXNET-ICOUNT-META " + json.dumps({"cpu": "test", "kernel": "6.1", "cpus": 1, "icount_shift": "0",
                                            "window_s": 1, "settle_s": 1, "kv_requests": 0}),
        row("rpc100", "kernel", 1, 10000.0, 0.04), row("rpc100", "epoll", 1, 12000.0, 2.0),
        row("rpc100", "kernel", 2, 10100.0, 0.04), row("rpc100", "epoll", 2, 12120.0, 2.0),
        "DAXNET-ICOUNT-PROFILE " + json.dumps({
            "workload": "rpc100", "transport": "kernel", "run": 0, "requests": 10, "server_ns_per_req": 9000.0,
            "profile": {"folded": {"server;kernel;dx:daxnet_sync": 3000, "server;httpd;main": 1000,
                                   "client;wrk;main": 2000}}}),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "serial.log")
        with open(log, "w") as f:
            f.write("\n".join(lines) + "\n")
        out = os.path.join(tmp, "docs")

        class A:
            serial_log = [log]
        A.out = out
        rc = collect.main_icount(A)
        check(rc == 0, "collect exit status 0")
        with open(os.path.join(out, "benchmarks.md")) as f:
            md = f.read()
        check("| rpc100 | kernel | 10,000 | 10,100 | 10,050 | ±0.5 % |" in md, "per-run row and spread")
        check("| rpc100: epoll / kernel | 1.20 | 1.20 | 1.20x | ±0.0 % |" in md, "ratio per run")
        check("kernel CPU/req >= 1.6x lower than epoll | 1.20x | missed by 33 %" in md, "target verdict")
        check("kernel syscalls/req <= 0.05 | 0.040 | met" in md, "syscalls target")
        # profile scaled to the measured mean (10,050 ns): 3/4 daxnet, 1/4 app
        check("| daxnet sync: own code | 7,538 |" in md, "profile layer scaled to schedstat")
        check("| app: user code | 2,512 |" in md, "app layer scaled")
        check(os.path.exists(os.path.join(out, "bench", "results-guest-icount.json")), "json written")
    print("bench/guest selftest: %s" % ("FAILED (%d)" % len(FAILS) if FAILS else "ok"))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
