# SPDX-License-Identifier: BSD-2-Clause
"""The servers under test: daxnet services, the two-copy WAL baseline, nginx, Redis.

Each server is started by the runner pinned to the server core, on a port
from the free-port finder, with its own configuration in a temporary
directory, and stopped when its group of runs is done. A server knows:
  pids()        processes whose CPU is the server's (nginx: master + workers)
  counters()    its own counters, flattened to {name: number}, or {}
  requests()    its own count of requests served, or None (steady windows)
"""

import http.client
import json
import os
import re
import shutil
import sys
import time

from . import procs

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "lib"))
import daxnet_testlib as tl  # noqa: E402  (the startup line, the RESP client)

RPC_BODY = "0123456789abcdef" * 4  # 64 bytes, PASTE's rpc response body


class NotAvailable(Exception):
    """The server cannot run here (binary not built, tool missing)."""


class StartError(Exception):
    pass


def http_get(port, path, timeout=5.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Host": "bench"})
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


def resp_command(port, *args, timeout=5.0):
    """One RESP2 command (daxnet_testlib's client); returns the reply as text (bulk/simple/int/error)."""
    r = tl.resp_call(port, *args, timeout=timeout)
    return r.decode(errors="replace") if isinstance(r, bytes) else str(r)


def flatten(obj, prefix=""):
    """Nested JSON -> {'a.b': number} (numbers only)."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, "%s%s." % (prefix, k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(flatten(v, "%s%d." % (prefix, i)))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix[:-1]] = obj
    return out


parse_info = tl.info_fields  # Redis INFO text -> {field: number}


def medium_env(ctx, medium):
    """Environment of a server on `medium`: shm = emulated pmem (CLWB + SFENCE); slowN = tmpfs at
    page granularity (one msync / fdatasync per batch) with bench/slowflush.c adding N µs to every
    flush call of daxnet and Redis alike."""
    if medium == "shm":
        return {"PMEM2_FORCE_GRANULARITY": "CACHE_LINE"}
    if medium.startswith("slow"):
        return {"LD_PRELOAD": ctx.slowflush_lib(), "DAXNET_FLUSH_DELAY_US": medium[4:]}
    return {}


class Server:
    name = "?"          # row label: nginx, redis, daxnet-httpd, ...
    variant = ""        # transport or fsync mode
    medium = "-"        # shm | ext4 | -
    proto = "http"      # http | resp
    has_counters = False

    def __init__(self, ctx):
        self.ctx = ctx
        self.proc = None
        self.port = None
        self.dir = None
        self.log = None
        self.info = ""  # startup line / version, for the results

    @property
    def label(self):
        return "%s %s" % (self.name, self.variant) if self.variant else self.name

    def pids(self):
        return [self.proc.pid] if self.proc else []

    def cpu_seconds(self):
        return sum(procs.proc_cpu_seconds(p) for p in self.pids())

    def runtime_seconds(self):
        return sum(procs.proc_runtime_seconds(p) for p in self.pids())

    def cpu_split(self):
        u = s = 0.0
        for p in self.pids():
            a, b = procs.proc_cpu_split(p)
            u += a
            s += b
        return u, s

    def counters(self):
        return {}

    def requests(self):
        return None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None:
            procs.kill_group(self.proc)
            self.proc = None
        if self.dir and not self.ctx.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n=2000):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode(errors="replace")[-n:]
        except OSError:
            return ""

    def _mkdir(self, base):
        os.makedirs(base, exist_ok=True)
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="daxbench-%s-" % re.sub(r"\W", "", self.label), dir=base)
        self.log = os.path.join(self.dir, "server.log")


# ---------------------------------------------------------------- nginx


class Nginx(Server):
    name = "nginx"

    def __init__(self, ctx, conns_hint=20000):
        super().__init__(ctx)
        self.conns_hint = conns_hint

    def start(self):
        if not shutil.which("nginx"):
            raise NotAvailable("nginx not installed")
        self._mkdir(self.ctx.tmp_base)
        self.port = procs.free_port()
        d = self.dir
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = """# generated by bench/run.py
%(user)sworker_processes 1;
worker_rlimit_nofile 30000;
daemon off;
master_process on;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 25000; use epoll; }
http {
    access_log off;
    server_tokens off;
    keepalive_requests 1000000000;
    keepalive_timeout 600s;
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    server {
        listen 127.0.0.1:%(port)d backlog=4096;
        location = /nginx_status { stub_status; }
        location / { default_type text/plain; return 200 "%(body)s"; }
    }
}
""" % {"d": d, "port": self.port, "body": RPC_BODY, "user": user}
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.proc = procs.start(["nginx", "-p", d, "-c", path, "-e", os.path.join(d, "error.log")],
                                self.log, cpu=self.ctx.server_cpu)
        if not procs.wait_port(self.port, self.proc):
            raise StartError("nginx did not start: " + self.log_tail() + _read(os.path.join(d, "error.log")))
        self.info = _first_line(["nginx", "-v"])
        time.sleep(0.2)  # the worker is forked after the listen socket opens

    def pids(self):
        if not self.proc:
            return []
        return [self.proc.pid] + procs.descendants(self.proc.pid)

    def requests(self):
        try:
            st, body = http_get(self.port, "/nginx_status")
        except OSError:
            return None
        m = re.search(r"\n\s*(\d+)\s+(\d+)\s+(\d+)", body)
        return int(m.group(3)) if m else None


# ---------------------------------------------------------------- Redis


class Redis(Server):
    name = "redis"
    proto = "resp"
    has_counters = True

    def __init__(self, ctx, fsync, medium):
        super().__init__(ctx)
        self.variant = "aof-" + fsync
        self.fsync = fsync
        self.medium = medium

    def start(self):
        if not shutil.which("redis-server"):
            raise NotAvailable("redis-server not installed")
        self._mkdir(self.ctx.medium_dir(self.medium))
        self.port = procs.free_port()
        conf = """# generated by bench/run.py
port %(port)d
bind 127.0.0.1
protected-mode no
daemonize no
dir %(d)s
logfile ""
save ""
appendonly yes
appendfsync %(fsync)s
appenddirname "aof"
auto-aof-rewrite-percentage 0
io-threads 1
maxclients 20000
""" % {"port": self.port, "d": self.dir, "fsync": self.fsync}
        path = os.path.join(self.dir, "redis.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.proc = procs.start(["redis-server", path], self.log, env=medium_env(self.ctx, self.medium),
                                cpu=self.ctx.server_cpu)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if resp_command(self.port, "PING") == "PONG":
                    self.info = _first_line(["redis-server", "--version"])
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise StartError("redis-server did not start: " + self.log_tail())

    def counters(self):
        try:
            info = parse_info(resp_command(self.port, "INFO", "all"))
        except OSError:
            return {}
        return {k: v for k, v in info.items()
                if k in ("total_commands_processed", "aof_delayed_fsync", "total_net_input_bytes",
                         "total_net_output_bytes", "used_memory")}

    def requests(self):
        try:
            return parse_info(resp_command(self.port, "INFO", "stats")).get("total_commands_processed")
        except OSError:
            return None


# ---------------------------------------------------------------- daxnet services


class Daxnet(Server):
    """daxnet-httpd / daxnet-kv / daxnet-wal, common CLI (examples/common/.../options.h)."""

    has_counters = True

    # `uring-plain`: the io_uring transport with the ring as before issue 15 (no COOP_TASKRUN, no
    # registered files or ring fd), for before/after comparisons in one run (--uring-plain)
    PLAIN_ENV = {"DAXNET_URING_NO_COOP": "1", "DAXNET_URING_NO_FIXED": "1", "DAXNET_URING_NO_REGRING": "1"}

    def __init__(self, ctx, binary, transport, medium="shm", extra=(), proto="http", name=None):
        super().__init__(ctx)
        self.binary = binary
        self.name = name or binary
        self.variant = transport
        self.env = dict(self.PLAIN_ENV) if transport == "uring-plain" else {}
        transport = "uring" if transport == "uring-plain" else transport
        self.transport = transport
        self.medium = medium
        self.extra = list(extra)
        self.proto = proto
        self.addrs = {}
        self.startup = ""

    def path(self):
        return os.path.join(self.ctx.bin_dir, self.binary)

    def available(self):
        return os.access(self.path(), os.X_OK)

    def start(self):
        if not self.available():
            raise NotAvailable("%s not built (looked in %s)" % (self.binary, self.ctx.bin_dir))
        self._mkdir(self.ctx.medium_dir(self.medium))
        pool = os.path.join(self.dir, "bench.pool")
        port = procs.free_port()
        argv = [self.path(), "--pool", pool, "--pool-size", self.ctx.pool_size, "--port", str(port),
                "--bind", "127.0.0.1", "--transport", self.transport, "--threads", "1"] + self.extra
        env = medium_env(self.ctx, self.medium)
        env.update(self.env)
        self.proc = procs.start(argv, self.log, env=env, cpu=self.ctx.server_cpu)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = self.log_tail(20000)
            line, addrs = tl.parse_startup(text)  # the startup line contract
            if line:
                self.startup = line.strip()
                self.addrs = {key: p for key, (_, p) in addrs.items()}
                self.port = self.addrs.get(self.proto) or port
                self.info = self.startup
                if procs.wait_port(self.port, self.proc, 10):
                    return
            if self.proc.poll() is not None:
                raise StartError("%s exited %s at start: %s" % (self.binary, self.proc.returncode, text[-1500:]))
            time.sleep(0.05)
        raise StartError("%s printed no startup line: %s" % (self.binary, self.log_tail()))

    def counters(self):
        try:
            if self.proto == "resp" and "resp" in self.addrs:
                return parse_info(resp_command(self.addrs["resp"], "INFO"))
            if "http" in self.addrs:
                st, body = http_get(self.addrs["http"], "/stats")
                if st == 200:
                    return flatten(json.loads(body))
        except (OSError, ValueError):
            pass
        return {}

    def requests(self):
        c = self.counters()
        for k in ("requests", "daxnet_requests", "total_commands_processed"):
            if k in c:
                return c[k]
        return None


class BaselineWal(Server):
    """bench/baseline_wal_server.cpp: recv into DRAM, memcpy into a libpmem2 log."""

    name = "baseline-wal"
    variant = "epoll"
    has_counters = True

    def __init__(self, ctx, medium="shm"):
        super().__init__(ctx)
        self.medium = medium

    def start(self):
        binary = self.ctx.baseline_binary()
        if not binary:
            raise NotAvailable("baseline_wal_server not built and g++/libpmem2 unavailable")
        self._mkdir(self.ctx.medium_dir(self.medium))
        port = procs.free_port()
        env = {"PMEM2_FORCE_GRANULARITY": "CACHE_LINE"} if self.medium == "shm" else {}
        self.proc = procs.start([binary, "--log", os.path.join(self.dir, "wal.log"), "--log-size", "1G",
                                 "--port", str(port)], self.log, env=env, cpu=self.ctx.server_cpu)
        if not procs.wait_port(port, self.proc):
            raise StartError("baseline_wal_server did not start: " + self.log_tail())
        self.port = port
        self.info = self.log_tail().splitlines()[0] if self.log_tail() else ""

    def counters(self):
        try:
            st, body = http_get(self.port, "/stats")
            return flatten(json.loads(body)) if st == 200 else {}
        except (OSError, ValueError):
            return {}

    def requests(self):
        return self.counters().get("requests")


class Floor(Server):
    """bench/floor_server.c: the rpc floor, what kernel TCP alone costs per request
    (recv, count request heads, send fixed replies; epoll or io_uring)."""

    name = "floor"

    def __init__(self, ctx, mode):
        super().__init__(ctx)
        self.variant = mode

    def start(self):
        binary = os.path.join(self.ctx.bin_dir, "floor_server")
        if not os.access(binary, os.X_OK):
            raise NotAvailable("floor_server not built (looked in %s)" % self.ctx.bin_dir)
        self._mkdir(self.ctx.tmp_base)
        port = procs.free_port()
        self.proc = procs.start([binary, "--port", str(port), "--bind", "127.0.0.1", "--mode", self.variant],
                                self.log, cpu=self.ctx.server_cpu)
        if not procs.wait_port(port, self.proc):
            raise StartError("floor_server did not start: " + self.log_tail())
        self.port = port
        self.info = self.log_tail().strip().replace("\n", "; ")


def _first_line(argv):
    import subprocess
    try:
        r = subprocess.run(argv, capture_output=True, timeout=10)
        return (r.stdout + r.stderr).decode(errors="replace").strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return ""


def _read(path):
    try:
        with open(path) as f:
            return f.read()[-2000:]
    except OSError:
        return ""
