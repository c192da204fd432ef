# SPDX-License-Identifier: BSD-2-Clause
"""One measured run: CPU of server and client, counters, steady window.

The primary figure is the server's CPU time per request: utime+stime from
/proc/PID/stat (all threads, all processes of the server) before and after
the client run, divided by the requests the client completed. The client's
own CPU (wait4 rusage) is reported beside it, and "other CPU" is the rest of
the machine's busy time in the same interval (other engineers' builds,
softirq not charged to either process), as a contention indicator.

For wrk runs a steady-state window is sampled as well (from `settle`
seconds after the start to 0.5 s before the end) using the server's own
request counter (nginx stub_status, Redis INFO, daxnet /stats or INFO), so
connection setup at 10000 connections does not dominate the comparison.
"""

import os
import time

from . import procs

NCPU = os.cpu_count() or 1

# Counter names, matched as the last component of a flattened key.
SYSCALL_KEYS = ("syscalls", "daxnet_syscalls", "syscalls_total", "total_syscalls")
FENCE_KEYS = ("fences", "daxnet_fences", "drains", "daxnet_drains")
COPY_KEYS = ("cpu_copied_bytes", "daxnet_cpu_copied_bytes", "bytes_copied", "daxnet_bytes_copied", "copied_bytes",
             "daxnet_copied_bytes")

RX_KEYS = ("rx_bytes", "daxnet_rx_bytes", "bytes_received")


def pick(counters, names):
    """The first counter whose last dotted component is one of `names`."""
    for name in names:
        for k in sorted(counters):
            if k.rsplit(".", 1)[-1] == name:
                return k, counters[k]
    return None, None


def delta(after, before):
    return {k: after[k] - before.get(k, 0) for k in after
            if isinstance(after[k], (int, float)) and k in before}


class Window:
    """Samples (time, server CPU, server request count) twice during a run."""

    def __init__(self, server, settle, seconds):
        self.server = server
        self.settle = settle
        self.seconds = seconds
        self.a = None
        self.b = None

    def __call__(self, proc, t0):
        if self.server.requests() is None:
            return
        end = t0 + self.seconds - 0.5
        if end - (t0 + self.settle) < 0.5:
            return
        _sleep_until(t0 + self.settle, proc)
        self.a = self._sample()
        _sleep_until(end, proc)
        if procs.running(proc):
            self.b = self._sample()

    def _sample(self):
        return (time.monotonic(), self.server.cpu_seconds(), self.server.requests())

    def result(self):
        if not self.a or not self.b or self.a[2] is None or self.b[2] is None:
            return {}
        n = self.b[2] - self.a[2]
        cpu = self.b[1] - self.a[1]
        if n < 1000 or cpu < 0.1:  # too few requests or CPU ticks to mean anything
            return {}
        dt = self.b[0] - self.a[0]
        return {"steady_rps": n / dt, "steady_server_us_per_req": (self.b[1] - self.a[1]) / n * 1e6,
                "steady_window_s": dt}


def _sleep_until(t, proc):
    while time.monotonic() < t and procs.running(proc):
        time.sleep(min(0.05, max(0.0, t - time.monotonic())))


def counters(server, tries=3):
    """The server's own counters; retried, since a busy server may answer late."""
    if not server.has_counters:
        return {}
    for _ in range(tries):
        c = server.counters()
        if c:
            return c
        time.sleep(0.3)
    return {}


def run(server, client, window=None, cores=(0, 1)):
    """client(during) -> dict from clients.wrk/redis_benchmark. Returns a row dict."""
    sirq0 = [procs.softirq_seconds(c) for c in cores]
    c0 = counters(server)
    u0, s0 = server.cpu_split()
    cpu0 = u0 + s0
    rt0 = server.runtime_seconds()
    busy0 = procs.system_busy_seconds()
    steal0 = procs.steal_seconds()
    t0 = time.monotonic()
    res = client(window)
    wall = time.monotonic() - t0
    u1, s1 = server.cpu_split()
    cpu1 = u1 + s1
    rt1 = server.runtime_seconds()
    busy1 = procs.system_busy_seconds()
    steal1 = procs.steal_seconds()
    sirq1 = [procs.softirq_seconds(c) for c in cores]
    c1 = counters(server) if c0 else {}
    n = res["requests"]
    srv = cpu1 - cpu0
    row = dict(res)
    row.update({
        "server_cpu_s": srv,
        "server_us_per_req": srv / n * 1e6 if n else None,
        "server_user_us_per_req": (u1 - u0) / n * 1e6 if n else None,
        "server_schedstat_us_per_req": (rt1 - rt0) / n * 1e6 if n else None,
        "server_sys_us_per_req": (s1 - s0) / n * 1e6 if n else None,
        "client_us_per_req": res["client_cpu_s"] / n * 1e6 if (n and res["client_cpu_s"] is not None) else None,
        "server_util_pct": srv / wall * 100.0 if wall else None,
        "other_cpu_pct": max(0.0, (busy1 - busy0) - srv - (res["client_cpu_s"] or 0.0)) / (wall * NCPU) * 100.0,
        "steal_pct": (steal1 - steal0) / (wall * NCPU) * 100.0,
        "wall_s": wall,
        # loopback TCP receive runs in softirq on the sending core: core 0 delivers the
        # replies to the client's socket, core 1 the requests to the server's
        "softirq_server_core_us_per_req": (sirq1[0] - sirq0[0]) / n * 1e6 if n else None,
        "softirq_client_core_us_per_req": (sirq1[1] - sirq0[1]) / n * 1e6 if n else None,
    })
    d = delta(c1, c0)
    k, own = pick(d, ("requests", "daxnet_requests", "total_commands_processed"))
    if k is not None:
        row["server_counted_requests"] = own  # must match the client's count (+ a few INFO/stats)
        if n and abs(own - n) > max(10, 0.02 * n):
            row["request_count_mismatch"] = True
    if n:
        for field, pat in (("syscalls_per_req", SYSCALL_KEYS), ("fences_per_req", FENCE_KEYS),
                           ("copied_bytes_per_req", COPY_KEYS)):
            k, v = pick(d, pat)
            if k is not None:
                row[field] = v / n
                row[field + "_src"] = "own counter " + k
        k, rx = pick(d, RX_KEYS)
        if k is not None and rx and row.get("copied_bytes_per_req") is not None:
            row["rx_bytes_per_req"] = rx / n
            row["copied_per_rx_byte"] = row["copied_bytes_per_req"] / (rx / n)
    row["counters"] = {k: v for k, v in d.items() if "per_" not in k}
    if window is not None:
        row.update(window.result())
    return row


def count_syscalls(server, client, tmpdir):
    """A short separate run under perf/strace; returns per-request syscall figures."""
    pids = server.pids()
    if not pids:
        return {}
    with procs.SyscallCounter(pids, tmpdir) as sc:
        res = client(None)
    counts = sc.counts()
    n = res["requests"]
    if not counts or not n or "total" not in counts:
        return {}
    out = {"traced_syscalls_per_req": counts["total"] / n, "trace_tool": sc.tool,
           "traced_requests": n, "traced_counts": counts}
    persist = counts.get("fdatasync", 0) + counts.get("fsync", 0) + counts.get("msync", 0)
    out["traced_persist_calls_per_req"] = persist / n
    return out
