# SPDX-License-Identifier: BSD-2-Clause
"""Processes: pinned start, CPU accounting from /proc, bounded clients, cleanup.

Every process the runner starts is registered here and killed (by its own
process group id, which the runner created) at exit, on SIGINT/SIGTERM, or
when a step fails. Nothing is ever killed by name.
"""

import atexit
import os
import signal
import socket
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")

_started = []  # Popen objects started in their own session


def _cleanup():
    for p in list(_started):
        kill_group(p)


def _on_signal(signum, _frame):
    _cleanup()
    sys.stderr.write("\nbench: interrupted (signal %d), servers stopped\n" % signum)
    os._exit(128 + signum)


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def kill_group(p, grace=3.0):
    """SIGTERM the process group we created for p, then SIGKILL after grace."""
    if p in _started:
        _started.remove(p)
    if p.poll() is not None:
        return p.returncode
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        return p.poll()
    try:
        return p.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return p.wait(5)


def start(argv, log_path, env=None, cpu=None):
    """Starts argv (pinned to `cpu` with taskset) in a new session."""
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu)] + list(argv)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    out = open(log_path, "ab")
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=full_env, start_new_session=True)
    out.close()
    _started.append(p)
    return p


def free_port():
    """A TCP port free on 127.0.0.1 right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


# ---------------------------------------------------------------- /proc


def proc_cpu_split(pid):
    """(utime, stime) seconds of a process (all its threads) from /proc/PID/stat."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return 0.0, 0.0
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK  # fields 14, 15 of stat(5)


def proc_cpu_seconds(pid):
    """utime+stime of a process (all its threads) from /proc/PID/stat."""
    u, s = proc_cpu_split(pid)
    return u + s


def task_ns(pid):
    """On-CPU ns of the live threads of pid (sum of /proc/PID/task/*/schedstat); 0 if gone."""
    total = 0
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return 0
    for t in tids:
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def proc_runtime_seconds(pid):
    """Exact on-CPU time of the live threads of pid, in seconds (task_ns).

    A cross-check of the tick-sampled utime+stime: exited threads are lost,
    which never happens to the servers measured here.
    """
    return task_ns(pid) / 1e9


def children(pid):
    """Direct children of pid (from /proc/*/stat)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(d))
    return out


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        c = children(todo.pop())
        out += c
        todo += c
    return out


def system_busy_seconds():
    """Busy CPU seconds of the whole machine (all cores) from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
    return busy / CLK_TCK


def softirq_seconds(cpu):
    """Softirq time of one core (/proc/stat cpuN), where loopback TCP receive runs."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu%d " % cpu):
                return int(line.split()[7]) / CLK_TCK
    return 0.0


def steal_seconds():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[7] if len(v) > 7 else 0) / CLK_TCK


# ---------------------------------------------------------------- clients


def running(proc):
    """True while proc has not exited; never reaps it (run_client needs its rusage)."""
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
    except ChildProcessError:
        return False


class ClientResult:
    def __init__(self, rc, out, err, cpu, wall, timed_out):
        self.rc = rc
        self.out = out
        self.err = err
        self.cpu = cpu      # user+sys seconds of the client (from wait4 rusage)
        self.wall = wall
        self.timed_out = timed_out


def run_client(argv, timeout, cpu=None, tmpdir="/tmp", during=None):
    """Runs a client to completion under a deadline; measures its CPU.

    `during(proc, t0)` is called once right after the start, in this thread,
    and may sleep (used to sample the server in a steady-state window).
    """
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu)] + list(argv)
    base = os.path.join(tmpdir, "client.%d" % os.getpid())
    with open(base + ".out", "wb") as fo, open(base + ".err", "wb") as fe:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, start_new_session=True)
        _started.append(p)
        if during is not None:
            during(p, t0)
        timed_out = False
        ru = None
        rc = None
        while True:
            try:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: exit status and rusage are lost
                rc = p.returncode if p.returncode is not None else -1
                ru = None
                break
            if pid == p.pid:
                rc = os.waitstatus_to_exitcode(status)
                p.returncode = rc
                break
            if time.monotonic() - t0 > timeout:
                timed_out = True
                os.killpg(p.pid, signal.SIGKILL)
                _, status, ru = os.wait4(p.pid, 0)
                rc = os.waitstatus_to_exitcode(status)
                p.returncode = rc
                break
            time.sleep(0.02)
        wall = time.monotonic() - t0
        if p in _started:
            _started.remove(p)
    with open(base + ".out", "rb") as f:
        out = f.read().decode(errors="replace")
    with open(base + ".err", "rb") as f:
        err = f.read().decode(errors="replace")
    cpu_s = (ru.ru_utime + ru.ru_stime) if ru is not None else None
    return ClientResult(rc, out, err, cpu_s, wall, timed_out)


# ---------------------------------------------------------------- syscall counting


PERF_EVENTS = ["raw_syscalls:sys_enter", "syscalls:sys_enter_fdatasync", "syscalls:sys_enter_fsync",
               "syscalls:sys_enter_msync", "syscalls:sys_enter_io_uring_enter", "syscalls:sys_enter_ioctl",
               "syscalls:sys_enter_epoll_wait", "syscalls:sys_enter_write", "syscalls:sys_enter_read"]


class SyscallCounter:
    """Counts a server's syscalls while a short client run happens.

    perf stat on tracepoints (in-kernel counting, small overhead) when it
    works, else strace -c -f (which slows the server a lot; counts only).
    """

    def __init__(self, pids, tmpdir):
        self.pids = pids
        self.tmpdir = tmpdir
        self.proc = None
        self.tool = None
        self.path = os.path.join(tmpdir, "sysc.%d.txt" % time.monotonic_ns())

    def __enter__(self):
        pidlist = ",".join(str(p) for p in self.pids)
        if _perf_ok():
            argv = ["perf", "stat", "-x", ",", "-o", self.path]
            for e in PERF_EVENTS:
                argv += ["-e", e]
            argv += ["-p", pidlist]
            self.tool = "perf"
        else:
            argv = ["strace", "-c", "-f", "-o", self.path]
            for p in self.pids:
                argv += ["-p", str(p)]
            self.tool = "strace"
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        _started.append(self.proc)
        time.sleep(0.4)  # attach
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            kill_group(self.proc)
        if self.proc in _started:
            _started.remove(self.proc)
        return False

    def counts(self):
        """{'total': n, 'fdatasync': n, ...} or {} if nothing was counted."""
        try:
            with open(self.path) as f:
                text = f.read()
        except OSError:
            return {}
        out = {}
        if self.tool == "perf":
            for line in text.splitlines():
                parts = line.split(",")
                if len(parts) < 3 or not parts[0].strip().isdigit():
                    continue
                ev = parts[2]
                name = "total" if ev == "raw_syscalls:sys_enter" else ev.replace("syscalls:sys_enter_", "")
                out[name] = int(parts[0])
        else:
            for line in text.splitlines():
                f = line.split()
                if len(f) >= 5 and f[-1] == "total":
                    out["total"] = int(f[3])
                elif len(f) >= 5 and f[3].isdigit():
                    out[f[-1]] = int(f[3])
        return out


_perf_state = None


def _perf_ok():
    global _perf_state
    if _perf_state is None:
        try:
            r = subprocess.run(["perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "true"],
                               capture_output=True, timeout=20)
            _perf_state = r.returncode == 0 and b"raw_syscalls" in r.stderr and b"not supported" not in r.stderr
        except (OSError, subprocess.TimeoutExpired):
            _perf_state = False
    return _perf_state
