#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Deterministic guest bench: server CPU per request as virtual time (runs in the guest).

The guest of bench/guest/host-bench.sh --icount has one vCPU and QEMU's
-icount shift=S,align=off,sleep=off: the guest's clocks (TSC, sched_clock,
CLOCK_MONOTONIC) advance by 2^S ns per executed instruction and jump over
idle time, whatever the host's load. The server, the client and the kernel
share the vCPU, so a run's figures are instruction counts:

  server  sum over the server's threads of /proc/PID/task/*/schedstat
          (on-CPU ns; the guest kernel has no IRQ_TIME_ACCOUNTING, so the
          softirq work done while the server runs -- on loopback, the TCP
          receive of what the server sends, done in the sender's context --
          is included, as is io_uring's io-wq/sqpoll threads' time)
  client  the same for wrk / redis-benchmark
  other   busy time of the vCPU (elapsed - idle, /proc/stat, exact under
          NO_HZ) minus the two: ksoftirqd, kworkers, this driver

Scheduling: with one vCPU, the kernel's wake-up preemption makes server
and client alternate per request (a woken server preempts the client at
once and handles one request), so no transport batches anything and their
costs come out alike. --sched batch (the default) runs the server, the
client and this driver as SCHED_BATCH (a woken task does not preempt): the
client runs until it waits for replies, then the server finds every
connection's request queued, as a saturated server on its own core does.
--sched other keeps the default policy (the ping-pong case).

measured over a steady window (wrk: from `settle` virtual seconds after the
start, for `window` seconds; redis-benchmark: the whole fixed-count run),
divided by the server's own request count (/stats or INFO, which also give
its syscalls, fences and copied bytes). Every configuration is run `runs`
times, each with a fresh server and pool, interleaved (run 1 of every
configuration, then run 2, ...).

--perf adds a profile pass: `perf record -e cpu-clock -a -g` over the
window of rpc and WAL on each transport; the samples are classified by layer
(see classify()) and printed with the counts.

Output: one line per measurement on stdout, for bench/guest/collect.py:
  DAXNET-ICOUNT-META {json}   DAXNET-ICOUNT-ROW {json}   DAXNET-ICOUNT-PROFILE {json}
and progress lines "daxnet-guest ..." (the host shows them while it waits).
"""

import argparse
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "lib"))
import daxnet_testlib as tl  # noqa: E402  (the RESP client, INFO's fields)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib.procs import task_ns  # noqa: E402  (on-CPU ns of a process)

HOST = "bench.daxnet.local"  # "GET / HTTP/1.1\r\nHost: bench.daxnet.local\r\n\r\n" is 44 bytes (PASTE's rpc)
WAL_BODY = 1024

# name -> (suite, server program, conns, client)
WORKLOADS = {
    "rpc100": ("rpc", 100),
    "rpc1000": ("rpc", 1000),
    "wal100": ("wal", 100),
    "kv50": ("kv", 50),
}


# Timeouts here are in virtual seconds, which race ahead while the vCPU idles
# waiting for the host (9p reads of a binary not yet in the page cache):
# only a very long one is safe; the host's --timeout bounds the real time.
VT = 100000


def say(msg):
    print("daxnet-guest [%7.1fs virt] %s" % (time.monotonic() - T0, msg), flush=True)


T0 = time.monotonic()


def emit(kind, obj):
    print("DAXNET-ICOUNT-%s %s" % (kind, json.dumps(obj, sort_keys=True)), flush=True)


# ------------------------------------------------------------------ /proc


def idle_ns():
    """Idle + iowait of the vCPU (exact ns under NO_HZ; /proc/uptime's second field)."""
    with open("/proc/uptime") as f:
        return int(float(f.read().split()[1]) * 1e9)


def comm_ns(prefix):
    """On-CPU ns of the kernel threads whose name starts with prefix (ksoftirqd, kworker)."""
    total = 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % p) as f:
                if not f.read().startswith(prefix):
                    continue
            total += task_ns(int(p))
        except OSError:
            pass
    return total


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ servers


def http_stats(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", "/stats", headers={"Host": "bench"})
        r = c.getresponse()
        return json.loads(r.read())
    finally:
        c.close()


def resp_info(port):
    """INFO's numeric fields (daxnet_testlib's RESP client)."""
    return tl.info_fields(tl.resp_call(port, "INFO", timeout=30))


class Server:
    def __init__(self, args, suite, transport):
        self.args, self.suite, self.transport = args, suite, transport
        self.dir = tempfile.mkdtemp(prefix="icb-", dir=args.dax_dir)
        self.proc = None
        self.port = free_port()
        self.resp = suite == "kv"

    def start(self):
        a = self.args
        log = open(os.path.join(self.dir, "server.log"), "w")
        if self.transport == "baseline":
            argv = [os.path.join(a.bin_dir, "baseline_wal_server"), "--log", os.path.join(self.dir, "wal.log"),
                    "--log-size", "256M", "--port", str(self.port)]
        else:
            prog = "daxnet-kv" if self.suite == "kv" else "daxnet-httpd"
            argv = [os.path.join(a.bin_dir, prog), "--pool", os.path.join(self.dir, "bench.pool"),
                    "--pool-size", a.pool_size, "--port", str(self.port), "--bind", "127.0.0.1",
                    "--transport", self.transport, "--threads", "1"]
            if self.suite != "kv":
                argv += ["--workload", self.suite]
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + VT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited %s: %s" % (argv[0], self.proc.returncode, self.log_tail()))
            try:
                self.counters()
                return
            except (OSError, ValueError, http.client.HTTPException):
                time.sleep(0.2)
        raise RuntimeError("%s did not answer: %s" % (argv[0], self.log_tail()))

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "server.log")) as f:
                return f.read()[-1500:]
        except OSError:
            return ""

    def counters(self):
        if self.resp:
            i = resp_info(self.port)
            return {"requests": i.get("daxnet_requests", 0), "syscalls": i.get("daxnet_syscalls", 0),
                    "fences": i.get("daxnet_fences", 0), "copied": i.get("daxnet_cpu_copied_bytes", 0),
                    "rx_bytes": i.get("daxnet_rx_bytes", 0)}
        s = http_stats(self.port)
        return {"requests": s.get("requests", 0), "syscalls": s.get("syscalls", 0), "fences": s.get("fences", 0),
                "copied": s.get("cpu_copied_bytes", 0), "rx_bytes": s.get("rx_bytes", 0)}

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def write_lua(path, suite):
    lines = ['wrk.headers["Host"] = "%s"' % HOST, 'wrk.path = "/"']
    if suite == "wal":
        # 1156-byte POST with a 1024-byte body, as bench/benchlib/clients.py builds it
        base = "POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nX-Pad: \r\n\r\n" % (HOST, WAL_BODY)
        lines += ['wrk.method = "POST"', 'wrk.body = string.rep("w", %d)' % WAL_BODY,
                  'wrk.headers["X-Pad"] = "%s"' % ("p" * (1156 - WAL_BODY - len(base)))]
    else:
        lines += ['wrk.method = "GET"']
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------ one measurement


def tcp_mib():
    """Tcp: and TcpExt: counters of /proc/net/snmp and /proc/net/netstat ({} if unreadable)."""
    out = {}
    for path in ("/proc/net/snmp", "/proc/net/netstat"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for names, vals in zip(lines[::2], lines[1::2]):
            head, _, rest = names.partition(":")
            if head not in ("Tcp", "TcpExt"):
                continue
            for k, v in zip(rest.split(), vals.partition(":")[2].split()):
                try:
                    out[head + "." + k] = int(v)
                except ValueError:
                    pass
    return out


class Snap:
    def __init__(self, srv, client_pid):
        self.mib = tcp_mib()
        self.t = time.monotonic_ns()
        self.idle = idle_ns()
        self.server = task_ns(srv.proc.pid)
        self.client = task_ns(client_pid) if client_pid else 0
        self.ksoftirqd = comm_ns("ksoftirqd")
        self.c = srv.counters()


def result(a, b, client_ns=None):
    n = b.c["requests"] - a.c["requests"]
    busy = (b.t - a.t) - (b.idle - a.idle)
    srv = b.server - a.server
    cli = (b.client - a.client) if client_ns is None else client_ns
    r = {"requests": n, "virt_s": (b.t - a.t) / 1e9, "busy_pct": 100.0 * busy / max(1, b.t - a.t)}
    if n > 0:
        r.update({
            "server_ns_per_req": srv / n,
            "client_ns_per_req": cli / n,
            "other_ns_per_req": (busy - srv - cli) / n,
            "ksoftirqd_ns_per_req": (b.ksoftirqd - a.ksoftirqd) / n,
            "rps_virt": n / ((b.t - a.t) / 1e9),
        })
        for k in ("syscalls", "fences", "copied", "rx_bytes"):
            r[k + "_per_req"] = (b.c[k] - a.c[k]) / n
        # Loopback TCP per request, both directions (segments, ACKs, corking, retransmits): what moved.
        r["tcp_mib_per_req"] = {k: round((v - a.mib.get(k, 0)) / n, 4) for k, v in b.mib.items()
                                if k in a.mib and v != a.mib[k] and not k.startswith("Tcp.Curr")}
    return r


def warm_perf():
    """Reads perf and its libraries into the page cache (a first start over 9p takes long)."""
    subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-o", "/tmp/perf-warm.data", "--", "true"],
                   capture_output=True, timeout=VT)
    subprocess.run(["perf", "script", "-i", "/tmp/perf-warm.data"], capture_output=True, timeout=VT)


def measure(args, name, transport, run, profile=False):
    suite, conns = WORKLOADS[name]
    srv = Server(args, suite, transport)
    row = {"workload": name, "suite": suite, "conns": conns, "transport": transport, "run": run}
    t_start = time.monotonic()
    try:
        srv.start()
        if suite == "kv":
            row.update(measure_kv(args, srv, conns))
        else:
            row.update(measure_wrk(args, srv, suite, conns, profile))
    except Exception as e:  # a failed configuration must not stop the others
        row["error"] = str(e)[:400]
    finally:
        srv.stop()
    row["wall_virt_s"] = time.monotonic() - t_start
    return row


def measure_wrk(args, srv, suite, conns, profile):
    lua = write_lua(os.path.join(srv.dir, "req.lua"), suite)
    dur = args.settle + args.window + 60  # ended by SIGINT after the window
    url = "http://127.0.0.1:%d/" % srv.port
    # warm-up: page cache, the pool's first touches, the first connections
    subprocess.run(["wrk", "-t1", "-c%d" % min(conns, 10), "-d1s", "-s", lua, url], capture_output=True,
                   timeout=VT)
    wrk = subprocess.Popen(["wrk", "-t1", "-c%d" % conns, "-d%ds" % dur, "--timeout", "10s", "-s", lua, url],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # The window starts once the load flows: wrk may still be starting (its
    # pages read over 9p, while the idle vCPU's clock races ahead) or
    # waiting for a SYN retransmit after a full accept backlog.
    base = srv.counters()["requests"]
    waited = time.monotonic()
    while srv.counters()["requests"] < base + 2 * conns:
        if wrk.poll() is not None:
            raise RuntimeError("wrk exited %s before the load flowed: %s" % (
                wrk.returncode, wrk.stdout.read().decode(errors="replace")[-300:]))
        if time.monotonic() - waited > 3000:
            raise RuntimeError("no load after 3000 virtual s")
        time.sleep(0.05)
    time.sleep(args.settle)
    a = Snap(srv, wrk.pid)
    prof = None
    if profile:
        data = os.path.join(srv.dir, "perf.data")
        subprocess.run(["perf", "record", "-q", "--no-buildid", "-e", "cpu-clock", "-F", str(args.perf_freq), "-a", "-g",
                        "-o", data, "--", "sleep", str(args.window)], capture_output=True, timeout=VT)
    else:
        time.sleep(args.window)
    b = Snap(srv, wrk.pid)
    wrk.send_signal(signal.SIGINT)
    out, _ = wrk.communicate(timeout=VT)
    r = result(a, b)
    m = re.search(r"(\d+) requests in", out.decode(errors="replace"))
    r["wrk_requests"] = int(m.group(1)) if m else None
    if not m:
        r["wrk_output"] = out.decode(errors="replace")[-400:]
    if r.get("busy_pct", 100) < 50:  # the vCPU idled through the window: nobody could make progress
        r["stalled"] = True
    errs = re.search(r"Socket errors: (.*)", out.decode(errors="replace"))
    if errs:
        r["wrk_errors"] = errs.group(1)
    if profile:
        r["profile"] = profile_layers(data, srv.proc.pid, wrk.pid, r["requests"])
    return r


def measure_kv(args, srv, conns):
    n = args.kv_requests
    argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(srv.port), "-t", "set", "-n", str(n), "-c", str(conns),
            "-P", "1", "-d", "1024", "-r", "1000", "-q"]
    subprocess.run(argv[:8] + ["2000"] + argv[9:], capture_output=True, timeout=VT)  # warm-up
    a = Snap(srv, None)
    # the client's own CPU: wait4() rusage is tick-sampled, so take it from its
    # threads' schedstat just before it exits (it runs to completion here)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    cli = 0
    while p.poll() is None:
        v = task_ns(p.pid)
        cli = max(cli, v)
        time.sleep(0.05)
    out = p.communicate()[0]
    b = Snap(srv, None)
    r = result(a, b, client_ns=cli)
    r["client_note"] = "redis-benchmark on-CPU time sampled every 50 ms virtual (lower bound)"
    r["client_out"] = out.decode(errors="replace").strip()[-200:]
    return r


# ------------------------------------------------------------------ profile


# A sample is folded into "who;dso;frame;frame;..." (leaf first; who:
# server, client or other; dso: the leaf's object, "kernel" for the kernel
# and its modules; daxnet.ko's frames prefixed "dx:", from /proc/kallsyms,
# since perf script shows module frames as [kernel.kallsyms]). The host
# classifies the folded stacks (collect.py --icount, classify()), so the
# rules can change without a new run.
NET_TX = ("tcp_sendmsg", "tcp_sendmsg_locked", "tcp_push", "__tcp_push_pending_frames", "tcp_write_xmit",
          "tcp_sendpage", "do_tcp_sendpages", "tcp_sendpage_locked", "__tcp_transmit_skb", "ip_finish_output2",
          "__dev_queue_xmit", "loopback_xmit", "tcp_send_ack", "__tcp_send_ack", "tcp_send_delayed_ack")
NET_RX = ("tcp_recvmsg", "tcp_recvmsg_locked", "tcp_read_sock", "skb_copy_datagram_iter", "__skb_datagram_iter",
          "tcp_cleanup_rbuf", "tcp_rcv_space_adjust", "__kfree_skb", "skb_attempt_defer_free")
NET = re.compile(r"(tcp_|__tcp_|ip_|__ip_|inet_|__inet_|sock_|__sock_|sk_|__sk_|skb_|__skb|dev_|__dev_|"
                 r"loopback|netif_|__netif_|release_sock|lock_sock|__release_sock)")

# The layers, in the order of the tables; classify() returns one of them.
LAYERS = ["app: user code", "app: libc (memcpy, ...)", "persist: libpmem2 flush/fence",
          "syscall entry/exit", "epoll", "io_uring core", "daxnet sync: own code",
          "TCP send (to loopback xmit)", "TCP receive (copy out of the socket)", "TCP/socket: other",
          "softirq: loopback delivery to the peer", "scheduler", "page faults", "interrupts, timers",
          "other kernel"]


def classify(folded):
    """'who;dso;f1;f2;...' (leaf first) -> (who, layer); the first matching rule wins."""
    parts = folded.split(";")
    who, dso, syms = parts[0], parts[1], parts[2:]
    leaf = syms[0] if syms else "?"
    if dso != "kernel":
        if "pmem2" in dso:
            return who, "persist: libpmem2 flush/fence"
        if re.search(r"libc|ld-linux", dso):
            return who, "app: libc (memcpy, ...)"
        return who, "app: user code"
    if any(x in ("__do_softirq", "net_rx_action", "do_softirq", "do_softirq.part.0") for x in syms):
        return who, "softirq: loopback delivery to the peer"
    if any(x in NET_TX for x in syms):
        return who, "TCP send (to loopback xmit)"
    if any(x in NET_RX for x in syms):
        return who, "TCP receive (copy out of the socket)"
    if any(x.startswith("dx:") for x in syms):
        if any(NET.match(x) for x in syms):
            return who, "TCP/socket: other"
        return who, "daxnet sync: own code"
    if any(x.startswith("io_") or x.startswith("__io_") for x in syms):
        return who, "io_uring core"
    if any(NET.match(x) for x in syms):
        return who, "TCP/socket: other"
    if any(x.startswith("ep_") or x.startswith("do_epoll") or x.startswith("__x64_sys_epoll") for x in syms):
        return who, "epoll"
    if any(x in ("schedule", "__schedule", "finish_task_switch.isra.0", "finish_task_switch") for x in syms):
        return who, "scheduler"
    if any(x.startswith("asm_exc_page_fault") for x in syms):
        return who, "page faults"
    if any(x.startswith("asm_sysvec") or x.startswith("asm_common_interrupt") for x in syms):
        return who, "interrupts, timers"
    if re.match(r"(entry_SYSCALL|syscall_|do_syscall|__x64_sys|exit_to_user|syscall_exit|fpregs|"
                r"switch_fpu|restore_fpregs|__fdget|fput|__fget|__rseq|rseq_)", leaf):
        return who, "syscall entry/exit"
    return who, "other kernel"


def layers(folded_counts):
    """{folded: ns} -> {who: {layer: ns}}"""
    out = {}
    for f, ns in folded_counts.items():
        who, layer = classify(f)
        out.setdefault(who, {}).setdefault(layer, 0)
        out[who][layer] += ns
    return out


def module_syms(name="daxnet"):
    out = set()
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                if line.rstrip().endswith("[%s]" % name):
                    out.add(line.split()[2])
    except OSError:
        pass
    return out


def profile_layers(data, server_pid, client_pid, requests):
    """perf script -> folded stacks with their sampled ns, and the layers."""
    try:
        p = subprocess.run(["perf", "script", "-i", data, "-F", "pid,period,ip,sym,dso"], capture_output=True,
                           timeout=VT)
    except subprocess.TimeoutExpired:
        return {"error": "perf script timed out"}
    folded = fold_script(p.stdout.decode(errors="replace"), server_pid, client_pid, module_syms())
    return {"folded": folded, "ns": layers(folded), "total_ns": sum(folded.values()), "requests": requests,
            "stderr": p.stderr.decode(errors="replace")[-300:]}


def fold_script(text, server_pid, client_pid, dx_syms, depth=48):
    counts = {}
    head = None
    chain = []

    def flush():
        if head is None:
            return
        pid, period = head
        who = "server" if pid == server_pid else ("client" if pid == client_pid else "other")
        dso = chain[0][1] if chain else "[unknown]"
        dso = "kernel" if dso.startswith("[kernel") else dso
        key = ";".join([who, dso] + [("dx:" + x if x in dx_syms else x) for x, _ in chain[:depth]])
        counts[key] = counts.get(key, 0) + period

    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith("\t"):
            flush()
            f = line.split()
            try:
                head = (int(f[0]), int(f[1]))
            except (ValueError, IndexError):
                head = None
            chain = []
        else:
            m = re.match(r"\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$", line)
            if m:
                sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(1)).replace(";", ",")
                chain.append((sym, "[" + os.path.basename(m.group(2).strip("[]")) + "]"
                              if m.group(2).startswith("[") else os.path.basename(m.group(2))))
    flush()
    return counts


# ------------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--dax-dir", default="/tmp/pmem")
    ap.add_argument("--pool-size", default="96M")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--settle", type=float, default=1.0, help="virtual s from wrk's start to the window")
    ap.add_argument("--window", type=float, default=2.0, help="virtual s measured")
    ap.add_argument("--kv-requests", type=int, default=20000)
    ap.add_argument("--workloads", default="rpc100,wal100,kv50,rpc1000")
    ap.add_argument("--transports", default="kernel,uring,epoll")
    ap.add_argument("--perf", action="store_true", help="add a profile pass (rpc100, wal100)")
    ap.add_argument("--perf-only", action="store_true")
    ap.add_argument("--perf-freq", type=int, default=2000)
    ap.add_argument("--perf-transports", default=None, help="transports profiled (default: --transports)")
    ap.add_argument("--perf-workloads", default=None, help="rpc100 and/or wal100 (default: those of --workloads)")
    ap.add_argument("--sched", choices=("batch", "other"), default="batch")
    ap.add_argument("--icount-shift", default=os.environ.get("DXBENCH_ICOUNT", "?"))
    args = ap.parse_args()
    os.makedirs(args.dax_dir, exist_ok=True)
    # 1000 connections: wrk and the server each need more than the default 1024 descriptors
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
    except (ValueError, OSError):
        pass
    if args.sched == "batch":  # inherited by the servers and clients started from here
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    have_kernel = os.path.exists("/dev/daxnet")
    transports = [t for t in args.transports.split(",") if t != "kernel" or have_kernel]
    workloads = args.workloads.split(",")
    with open("/proc/cpuinfo") as f:
        cpu = re.search(r"model name\s*:\s*(.*)", f.read())
    emit("META", {"kernel": os.uname().release, "cpus": os.cpu_count(), "cpu": cpu.group(1) if cpu else "?",
                  "icount_shift": args.icount_shift, "runs": args.runs, "settle_s": args.settle,
                  "window_s": args.window, "kv_requests": args.kv_requests, "sched": args.sched,
                  "perf_freq": args.perf_freq, "kernel_transport": have_kernel,
                  "workloads": workloads, "transports": transports})
    plan = []
    if args.perf or args.perf_only:
        # rpc100 and wal100, as far as --perf-workloads (or --workloads) names them; else both.
        # First, so that a long run shows its profiles early.
        pw = [w for w in ("rpc100", "wal100") if w in (args.perf_workloads or args.workloads).split(",")]
        pw = pw or ["rpc100", "wal100"]
        pt = [t for t in (args.perf_transports or args.transports).split(",") if t in transports]
        plan += [(w, t, 0, True) for w in pw for t in pt]
    if not args.perf_only:
        for run in range(1, args.runs + 1):
            for w in workloads:
                ts = list(transports)
                if WORKLOADS[w][0] == "wal":
                    ts.append("baseline")
                plan += [(w, t, run, False) for t in ts]
    if any(p[3] for p in plan):
        say("warming perf up")
        warm_perf()
    for i, (w, t, run, prof) in enumerate(plan):
        say("[%d/%d] %s %s %s" % (i + 1, len(plan), w, t, "profile" if prof else "run %d" % run))
        row = measure(args, w, t, run, prof)
        emit("PROFILE" if prof else "ROW", row)
        if "error" in row:
            say("  error: %s" % row["error"])
        else:
            say("  %d req, server %.0f ns/req, client %.0f, other %.0f, syscalls/req %.3f" % (
                row.get("requests", 0), row.get("server_ns_per_req", 0), row.get("client_ns_per_req", 0),
                row.get("other_ns_per_req", 0), row.get("syscalls_per_req", 0)))
    say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
