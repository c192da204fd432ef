#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""daxnet benchmarks: daxnet services side by side with nginx, Redis and a
two-copy WAL server, on this machine, in one run.

    bench/run.py --quick            # < 5 minutes: a subset of every suite
    bench/run.py --full             # the whole matrix, 3 repetitions
    bench/run.py --smoke            # a few seconds, proves the harness works
    bench/run.py --quick --only rpc --servers nginx,daxnet-httpd

Server on core 0, client on core 1 (taskset). Every server is started by
the runner, on a free port, with its own configuration in a temporary
directory on the medium under test, and stopped afterwards. Results go to
<out>/bench/results.{json,csv}, plots to <out>/bench/*.png and the tables
into <out>/benchmarks.md between the `<!-- bench:... -->` markers (prose
outside the markers is kept). --smoke writes to a temporary directory only.

Python 3 standard library only; plots with gnuplot when it is installed.
Method and reading of the results: docs/benchmarks.md.
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from benchlib import clients, measure, procs, report, servers  # noqa: E402

REPO = os.path.dirname(HERE)


# ---------------------------------------------------------------- modes


ALL_CP = [(1, 1), (1, 16), (50, 1), (50, 16)]

MODES = {
    # seconds: wrk seconds per run (doubled at 10000 connections); kv_seconds: target length of a
    # redis-benchmark run; kv: groups of {media, sizes, cp (conns, pipeline), ops} per server;
    # kv_extra: Redis upper bounds (medium, fsync mode, size, conns, pipeline, op).
    "smoke": dict(seconds=1, repeats=1, kv_seconds=1, kv_repeats=1, rpc_conns=[10], rpc_pipe=[],
                  wal_conns=[10], wal_pipe=[], wal_media=["shm"], kv_modes=["always"],
                  kv=[dict(media=["shm"], sizes=[64], cp=[(10, 1)], ops=["SET", "GET"])], kv_extra=[],
                  count=False, keyspace=1000, recovery=False, mixed=None),
    "quick": dict(seconds=3, repeats=1, target_repeats=3, kv_seconds=2, kv_repeats=1, rpc_conns=[1, 100, 1000, 10000],
                  rpc_pipe=[(100, 16)], wal_conns=[1, 100], wal_pipe=[(100, 8)], wal_media=["shm"],
                  kv_modes=["always"],
                  kv=[dict(media=["shm"], sizes=[1024], cp=[(1, 1), (50, 1), (50, 16)], ops=["SET", "GET"]),
                      dict(media=["shm"], sizes=[64], cp=[(50, 1), (50, 16)], ops=["SET", "GET"]),
                      dict(media=["ext4"], sizes=[1024], cp=[(1, 1), (50, 1), (50, 16)], ops=["SET"]),
                      dict(media=["ext4"], sizes=[1024], cp=[(50, 1)], ops=["GET"])],
                  kv_extra=[("shm", "everysec", 1024, 50, 1, "SET"), ("shm", "no", 1024, 50, 1, "SET"),
                            ("shm", "everysec", 1024, 50, 16, "SET"), ("shm", "no", 1024, 50, 16, "SET")],
                  count=True, keyspace=100000, recovery=True,
                  mixed=dict(media=["shm", "ext4"], size=1024, conns=10, writers=4),
                  slow=dict(delays=[0, 10, 100], size=1024, cp=[(50, 1), (1, 1)])),
    "full": dict(seconds=5, repeats=3, kv_seconds=4, kv_repeats=1, rpc_conns=[1, 10, 100, 1000, 10000],
                 rpc_pipe=[(100, 4), (100, 16)], wal_conns=[1, 10, 100, 1000], wal_pipe=[(100, 8)],
                 wal_media=["shm", "ext4"], kv_modes=["always", "everysec", "no"],
                 kv=[dict(media=["shm", "ext4"], sizes=[64, 1024], cp=ALL_CP, ops=["SET", "GET"])], kv_extra=[],
                 count=True, keyspace=100000, recovery=True,
                 mixed=dict(media=["shm", "ext4"], size=1024, conns=10, writers=4),
                 slow=dict(delays=[0, 10, 100], size=1024, cp=[(50, 1), (1, 1), (50, 16)])),
    # Inside the emulated 6.1 guest (bench/guest/guest-bench-transports.sh): daxnet's three
    # transports on identical application code, pools on the DAX mount; ratios only.
    "guest": dict(seconds=4, repeats=1, target_repeats=3, kv_seconds=1, kv_repeats=1, rpc_conns=[10, 100], rpc_pipe=[],
                  wal_conns=[100], wal_pipe=[], wal_media=["dax"], kv_modes=[], kv=[], kv_extra=[],
                  count=False, keyspace=1000, recovery=False, mixed=None),
}


class Ctx:
    def __init__(self, args, tmp):
        self.bin_dir = os.path.abspath(args.bin_dir)
        self.server_cpu = args.server_cpu
        self.client_cpu = args.client_cpu
        self.keep = args.keep
        self.tmp = tmp
        self.tmp_base = tmp
        self.pool_size = args.pool_size
        self.ext4_dir = args.ext4_dir
        self.dax_dir = args.dax_dir
        self.guest = args.mode == "guest"
        self._baseline = None
        self.build_log = []

    def medium_dir(self, medium):
        if medium == "shm":
            return os.path.join("/dev/shm", os.path.basename(self.tmp))
        if medium == "ext4":
            return os.path.join(self.ext4_dir, os.path.basename(self.tmp))
        if medium == "dax":
            return os.path.join(self.dax_dir, os.path.basename(self.tmp))
        if medium.startswith("slow"):
            return os.path.join("/dev/shm", os.path.basename(self.tmp))
        return self.tmp

    def slowflush_lib(self):
        """bench/slowflush.c as an LD_PRELOAD library, compiled here once."""
        out = os.path.join(self.tmp, "slowflush.so")
        if not os.path.exists(out):
            cc = shutil.which("cc") or shutil.which("gcc")
            r = subprocess.run([cc or "cc", "-O2", "-shared", "-fPIC", "-o", out, os.path.join(HERE, "slowflush.c"),
                                "-ldl"], capture_output=True, timeout=120)
            if r.returncode != 0:
                raise RuntimeError("slowflush.c: " + r.stderr.decode(errors="replace")[-500:])
        return out

    def baseline_binary(self):
        """bench/baseline_wal_server: from --bin-dir, else compiled here once."""
        if self._baseline is not None:
            return self._baseline or None
        cand = os.path.join(self.bin_dir, "baseline_wal_server")
        if os.access(cand, os.X_OK):
            self._baseline = cand
            return cand
        if self.guest:  # read-only host root, compilers are slow under TCG
            self._baseline = ""
            return None
        out = os.path.join(self.tmp, "baseline_wal_server")
        src = os.path.join(HERE, "baseline_wal_server.cpp")
        cxx = shutil.which("g++") or shutil.which("c++")
        self._baseline = ""
        if cxx:
            r = subprocess.run([cxx, "-std=c++20", "-O2", "-o", out, src, "-lpmem2"], capture_output=True,
                               timeout=300)
            if r.returncode == 0:
                self._baseline = out
            else:
                self.build_log.append(r.stderr.decode(errors="replace")[-2000:])
        return self._baseline or None


# ---------------------------------------------------------------- progress


class Progress:
    def __init__(self, total, est_s):
        self.total = total
        self.done = 0
        self.t0 = time.monotonic()
        self.est = est_s
        self.tty = sys.stdout.isatty()

    def _head(self):
        el = time.monotonic() - self.t0
        left = max(0.0, self.est - el) if self.done == 0 else el / self.done * (self.total - self.done)
        return "[%3d/%d %s, ~%s left]" % (self.done, self.total, _mmss(el), _mmss(left))

    def start(self, what):
        if self.tty:
            sys.stdout.write("\r\033[K%s %s ..." % (self._head(), what))
            sys.stdout.flush()

    def finish(self, what, summary):
        self.done += 1
        line = "%s %s: %s" % (self._head(), what, summary)
        if self.tty:
            sys.stdout.write("\r\033[K" + line + "\n")
        else:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def note(self, text):
        sys.stdout.write(("\r\033[K" if self.tty else "") + text + "\n")
        sys.stdout.flush()


def _mmss(s):
    return "%d:%02d" % (int(s) // 60, int(s) % 60)


def summarize(row):
    if row.get("status") != "ok":
        return row.get("status", "?")
    err = " [%d client errors: %s]" % (row["errors"], row.get("err_detail")) if row.get("errors") else ""
    s = "%s req/s, server %s µs/req, client %s µs/req, p50 %s p99 %s µs" % (
        _k(row["rps"]), _f(row.get("server_us_per_req")), _f(row.get("client_us_per_req")),
        _f(row.get("p50_us"), 0), _f(row.get("p99_us"), 0))
    if row.get("other_cpu_pct", 0) > 15:
        s += " (other load %.0f%%)" % row["other_cpu_pct"]
    return s + err


def _k(v):
    return "%.1fk" % (v / 1000) if v is not None else "-"


def _f(v, nd=2):
    return ("%.*f" % (nd, v)) if isinstance(v, (int, float)) else "-"


# ---------------------------------------------------------------- plan


class Job:
    """A group of runs against one server instance."""

    def __init__(self, suite, make_server, runs):
        self.suite = suite
        self.make_server = make_server
        self.runs = runs  # list of dicts: params for one measured run


def _kv_sync(ctx, transport, medium):
    """daxnet-kv with --pipelined-commit false: the loop waits for each batch's msync (as before
    the pipelined commit); row label 'daxnet-kv <transport>-sync'."""
    s = servers.Daxnet(ctx, "daxnet-kv", transport, medium, ["--pipelined-commit", "false"], proto="resp")
    s.variant = transport + "-sync"
    return s


def plan(mode, ctx, only, server_filter, uring_plain=False, media_filter=(), kv_sync=False):
    m = MODES[mode]
    plain = ("uring-plain",) if uring_plain else ()
    # --kv-sync: daxnet-kv epoll also without the pipelined commit, for before/after in one run
    sync_variants = ("epoll",) if kv_sync else ()
    jobs = []

    def want(suite, label, medium=None):
        if only and suite not in only:
            return False
        if media_filter and medium is not None and medium not in media_filter:
            return False
        if server_filter and not any(label.startswith(f) for f in server_filter):
            return False
        return True

    # rpc: nginx vs daxnet-httpd rpc on uring and epoll
    rpc_runs = [dict(conns=c, depth=1) for c in m["rpc_conns"]] + \
               [dict(conns=c, depth=d) for c, d in m["rpc_pipe"]]
    guest = mode == "guest"
    transports = ("kernel", "uring", "epoll") if guest else ("uring", "epoll") + plain
    rpc_servers = [] if guest else [("nginx", lambda: servers.Nginx(ctx))]
    if not guest:  # the floor: a bare responder, what kernel TCP alone costs
        rpc_servers += [("floor " + fm, lambda fm=fm: servers.Floor(ctx, fm)) for fm in ("epoll", "uring")]
    for t in transports:
        rpc_servers.append(("daxnet-httpd " + t, lambda t=t: servers.Daxnet(
            ctx, "daxnet-httpd", t, "dax" if guest else "shm", ["--workload", "rpc"])))
    for label, mk in rpc_servers:
        if want("rpc", label):
            jobs.append(Job("rpc", mk, [dict(r, count=m["count"] and r["conns"] == 100)
                                        for r in rpc_runs]))

    # wal: two-copy baseline vs daxnet-httpd wal on uring and epoll, per medium
    wal_runs = [dict(conns=c, depth=1) for c in m["wal_conns"]] + \
               [dict(conns=c, depth=d) for c, d in m["wal_pipe"]]
    for medium in m["wal_media"]:
        wal_servers = [("baseline-wal", lambda md=medium: servers.BaselineWal(ctx, md))]
        for t in transports:
            wal_servers.append(("daxnet-httpd " + t, lambda t=t, md=medium: servers.Daxnet(
                ctx, "daxnet-httpd", t, md, ["--workload", "wal"])))
        for label, mk in wal_servers:
            if want("wal", label):
                jobs.append(Job("wal", mk, [dict(r, medium=medium,
                                                 count=m["count"] and r["conns"] == 100
                                                 and medium != "ext4") for r in wal_runs]))

    # kv: redis-benchmark against Redis (AOF) and daxnet-kv, same medium
    kv = {}  # (medium, server label) -> (maker, runs)
    media = []
    for g in m["kv"]:
        media += [md for md in g["media"] if md not in media]
    for medium in media:
        makers = [("redis aof-" + f, lambda f=f, md=medium: servers.Redis(ctx, f, md)) for f in m["kv_modes"]]
        for t in ("uring", "epoll") + plain:  # every transport, also in --quick
            makers.append(("daxnet-kv " + t, lambda t=t, md=medium: servers.Daxnet(
                ctx, "daxnet-kv", t, md, [], proto="resp")))
        makers += [("daxnet-kv " + t + "-sync", lambda t=t, md=medium: _kv_sync(ctx, t, md)) for t in sync_variants]
        runs = []
        for g in m["kv"]:
            if medium not in g["media"]:
                continue
            for size in g["sizes"]:
                for op in g["ops"]:
                    for c, p in g["cp"]:
                        runs.append(dict(op=op, size=size, conns=c, depth=p, medium=medium,
                                         count=m["count"] and op == "SET" and c == 50 and p == 1 and size == 1024))
        runs.sort(key=lambda r: (r["size"], r["op"] != "SET"))
        for label, mk in makers:
            kv[(medium, label)] = (mk, [dict(r) for r in runs])
    for medium, fsync, size, c, p, op in m["kv_extra"]:
        label = "redis aof-" + fsync
        key = (medium, label)
        if key not in kv:
            kv[key] = (lambda f=fsync, md=medium: servers.Redis(ctx, f, md), [])
        kv[key][1].append(dict(op=op, size=size, conns=c, depth=p, medium=medium, count=False))
    for (medium, label), (mk, runs) in kv.items():
        if want("kv", label, medium):
            jobs.append(Job("kv", mk, runs))

    # mixed: GET latency idle and while other clients SET durably (issue 15)
    mx = m.get("mixed")
    for medium in (mx["media"] if mx else []):
        makers = [("redis aof-always", lambda md=medium: servers.Redis(ctx, "always", md))]
        makers += [("daxnet-kv " + t, lambda t=t, md=medium: servers.Daxnet(ctx, "daxnet-kv", t, md, [], proto="resp"))
                   for t in ("uring", "epoll")]
        makers += [("daxnet-kv " + t + "-sync", lambda t=t, md=medium: _kv_sync(ctx, t, md)) for t in sync_variants]
        runs = [dict(op="GET", size=mx["size"], conns=mx["conns"], depth=1, medium=medium, load=ld, count=False)
                for ld in ("idle", "set")]
        for label, mk in makers:
            if want("mixed", label, medium):
                jobs.append(Job("mixed", mk, [dict(r) for r in runs]))

    # slow: an emulated slow medium, a fixed delay per flush for daxnet and Redis alike
    sl = m.get("slow")
    for delay in (sl["delays"] if sl else []):
        medium = "slow%d" % delay
        makers = [("redis aof-always", lambda md=medium: servers.Redis(ctx, "always", md))]
        makers += [("daxnet-kv " + t, lambda t=t, md=medium: servers.Daxnet(ctx, "daxnet-kv", t, md, [], proto="resp"))
                   for t in ("uring", "epoll")]
        runs = [dict(op="SET", size=sl["size"], conns=c, depth=p, medium=medium, delay_us=delay, count=False)
                for c, p in sl["cp"]]
        for label, mk in makers:
            if want("slow", label):
                jobs.append(Job("slow", mk, [dict(r) for r in runs]))
    return jobs


def estimate(jobs, m):
    s = 0.0
    for j in jobs:
        s += 1.0  # start/stop
        for r in j.runs:
            per = m["seconds"] + 0.7
            if r.get("conns", 0) >= 10000:
                per += 2 + m["seconds"]
            reps = _repeats(m, j.suite, r)
            if j.suite in ("kv", "mixed", "slow"):
                per = m["kv_seconds"] + 1.0
            s += per * reps + (2.5 if r.get("count") else 0)
    return s


# ---------------------------------------------------------------- execution


def _key(r):
    return tuple(sorted(_params(r).items()))


def groups(jobs):
    """Jobs that are compared with each other run as one group: their servers are
    started together (idle ones cost nothing) and every configuration and every
    repetition is run on each server in turn, so that a change in the load from
    the rest of the machine hits all of them alike."""
    out = {}
    for j in jobs:
        medium = j.runs[0].get("medium", "-") if j.runs else "-"
        k = (j.suite, medium if j.suite != "rpc" else "-")
        out.setdefault(k, []).append(j)
    return list(out.values())


def run_group(group, ctx, m, prog, rows, tmp):
    live = []  # (job, server, base row)
    for job in group:
        srv = job.make_server()
        base = {"suite": job.suite, "server": srv.name, "variant": srv.variant, "medium": srv.medium}
        try:
            prog.start("%s %s: starting" % (job.suite, srv.label))
            srv.start()
            base["server_info"] = srv.info
            live.append((job, srv, base))
        except servers.NotAvailable as e:
            for r in job.runs:
                rows.append(dict(base, **_params(r), status="not built: %s" % e))
                prog.finish(_what(job, srv, r), "skipped (%s)" % e)
        except Exception as e:  # a start failure must not stop the others
            for r in job.runs:
                rows.append(dict(base, **_params(r), status="failed to start: %s" % str(e)[:300]))
                prog.finish(_what(job, srv, r), "failed to start: %s" % str(e)[:200])
            srv.stop()
    try:
        configs = []
        for job, _, _ in live:
            for r in job.runs:
                if _key(r) not in [_key(c) for c in configs]:
                    configs.append(r)
        prefilled = set()
        for r in configs:
            members = [(job, srv, base, next(x for x in job.runs if _key(x) == _key(r)))
                       for job, srv, base in live if any(_key(x) == _key(r) for x in job.runs)]
            reps = {id(srv): [] for _, srv, _, _ in members}
            errors = {}
            for _ in range(max(_repeats(m, job.suite, rr) for job, _, _, rr in members)):
                for job, srv, base, rr in members:  # interleaved
                    if id(srv) in errors:
                        continue
                    prog.start(_what(job, srv, rr))
                    try:
                        if not srv.alive():
                            raise RuntimeError("server exited: " + srv.log_tail(300))
                        if job.suite in ("kv", "mixed") and rr["op"] == "GET" and (id(srv), rr["size"]) not in prefilled:
                            _kv_prefill(srv, ctx, m, rr["size"], tmp)
                            prefilled.add((id(srv), rr["size"]))
                        reps[id(srv)].append(_one(job, srv, ctx, m, rr, tmp))
                    except Exception as e:
                        errors[id(srv)] = "failed: %s" % str(e)[:400]
            for job, srv, base, rr in members:
                what = _what(job, srv, rr)
                if id(srv) in errors:
                    row = dict(base, **_params(rr), status=errors[id(srv)])
                else:
                    row = dict(base, **_params(rr), status="ok", **_median(reps[id(srv)]))
                    row["repeats"] = len(reps[id(srv)])
                    if rr.get("count"):
                        prog.start(what + " (syscall count)")
                        try:
                            row.update(measure.count_syscalls(srv, _client(job, srv, ctx, m, rr, tmp, short=True),
                                                              tmp))
                        except Exception as e:
                            row["count_error"] = str(e)[:200]
                rows.append(row)
                prog.finish(what, summarize(row))
    finally:
        for _, srv, _ in live:
            srv.stop()


def _what(job, srv, r):
    if job.suite == "kv":
        return "kv %s %s %s d=%d c=%d P=%d" % (r["medium"], srv.label, r["op"], r["size"], r["conns"], r["depth"])
    if job.suite == "slow":
        return "slow +%dus %s SET d=%d c=%d P=%d" % (r["delay_us"], srv.label, r["size"], r["conns"], r["depth"])
    if job.suite == "mixed":
        return "mixed %s %s GET d=%d c=%d %s" % (r["medium"], srv.label, r["size"], r["conns"],
                                                 "while SETs run" if r["load"] == "set" else "idle")
    s = "%s %s c=%d" % (job.suite, srv.label, r["conns"])
    if r.get("depth", 1) > 1:
        s += " pipeline=%d" % r["depth"]
    if job.suite == "wal":
        s += " (%s)" % r["medium"]
    return s


def _params(r):
    return {k: v for k, v in r.items() if k not in ("count",)}


def _repeats(m, suite, r):
    n = m["kv_repeats"] if suite in ("kv", "mixed") else m["repeats"]
    if suite == "slow":  # few configurations, compared across delays: interleaved repetitions
        n = max(n, m.get("target_repeats", 1))
    if r.get("conns") == 100 and r.get("depth", 1) == 1:
        n = max(n, m.get("target_repeats", 1))
    return n


def _one(job, srv, ctx, m, r, tmp):
    if job.suite == "mixed":
        return _mixed_one(srv, ctx, m, r, tmp)
    if job.suite in ("kv", "slow"):
        _kv_pilot(srv, ctx, m, r, tmp)  # outside the measured interval
    client = _client(job, srv, ctx, m, r, tmp)
    window = None
    if job.suite in ("rpc", "wal"):
        settle = 1.0 + (2.0 if r["conns"] >= 10000 else 0.0)
        window = measure.Window(srv, settle, _wrk_seconds(m, r))
    return measure.run(srv, client, window, cores=(ctx.server_cpu, ctx.client_cpu))


def _wrk_seconds(m, r):
    return m["seconds"] + (m["seconds"] if r["conns"] >= 10000 else 0)


def _client(job, srv, ctx, m, r, tmp, short=False):
    if job.suite in ("rpc", "wal"):
        script = clients.write_lua(os.path.join(tmp, "%s-%d.lua" % (job.suite, r["depth"])), job.suite, r["depth"])
        secs = 1 if short else _wrk_seconds(m, r)
        url = "http://127.0.0.1:%d/" % srv.port
        return lambda during: clients.wrk(url, r["conns"], secs, script, ctx.client_cpu, tmp, during)
    target = 0.8 if short else m["kv_seconds"]
    return lambda during: _kv_run(srv, ctx, m, r, tmp, target)


_kv_rate = {}


def _kv_key(srv, r):
    return (srv.label, srv.medium, r["op"], r["size"], r["conns"], r["depth"])


def _kv_pilot(srv, ctx, m, r, tmp):
    """redis-benchmark has no duration flag: -n is sized from a pilot run's rate
    (which also warms up). Never inside a measured interval."""
    key = _kv_key(srv, r)
    if key not in _kv_rate:
        # small enough to stay short at ~100 req/s (fdatasync/msync on a disk, -c 1)
        pilot_n = max(200, 100 * r["depth"] * max(1, r["conns"] // 10))
        res = clients.redis_benchmark(srv.port, r["op"], pilot_n, r["conns"], r["depth"], r["size"], m["keyspace"],
                                      ctx.client_cpu, tmp, timeout=60)
        _kv_rate[key] = res["rps"]


def _kv_run(srv, ctx, m, r, tmp, target_s):
    key = _kv_key(srv, r)
    if key not in _kv_rate:
        raise RuntimeError("internal: no pilot run for %s" % (key,))
    n = int(min(max(_kv_rate[key] * target_s, 200), 20_000_000))
    return clients.redis_benchmark(srv.port, r["op"], n, r["conns"], r["depth"], r["size"], m["keyspace"],
                                   ctx.client_cpu, tmp, timeout=target_s * 4 + 60)


def _mixed_one(srv, ctx, m, r, tmp):
    """GETs measured as in kv; with load=set, `writers` other connections SET values of the
    same size durably (redis-benchmark -t set, bounded by -n and killed after the GETs) on the
    same keyspace the whole time. The writer shares the client core with the GET client."""
    _kv_pilot(srv, ctx, m, r, tmp)  # the idle GET rate sizes -n for both runs
    writer = None
    if r["load"] == "set":
        argv = ["taskset", "-c", str(ctx.client_cpu), "redis-benchmark", "-h", "127.0.0.1", "-p", str(srv.port),
                "-t", "set", "-n", "20000000", "-c", str(m["mixed"]["writers"]), "-d", str(r["size"]),
                "-r", str(m["keyspace"]), "-q"]
        writer = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(0.5)  # the writers are at work before the GETs start
    try:
        client = lambda during: _kv_run(srv, ctx, m, r, tmp, m["kv_seconds"])
        row = measure.run(srv, client, None, cores=(ctx.server_cpu, ctx.client_cpu))
    finally:
        if writer is not None:
            try:
                os.killpg(writer.pid, 15)
            except OSError:
                pass
            try:
                writer.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(writer.pid, 9)
                writer.wait()
    # server CPU includes the writers' SETs: not a per-GET figure
    row["server_us_per_req"] = None if r["load"] == "set" else row.get("server_us_per_req")
    return row


def _kv_prefill(srv, ctx, m, size, tmp):
    """Every key of redis-benchmark's keyspace exists before GETs are measured:
    SET key:000000000000 .. key:<keyspace-1> (redis-benchmark's key format) in
    pipelined chunks, so hit rates are 100 % on every server and medium."""
    value = b"x" * size
    chunk = 500
    with socket.create_connection(("127.0.0.1", srv.port), timeout=120) as s:
        for start in range(0, m["keyspace"], chunk):
            n = min(chunk, m["keyspace"] - start)
            cmds = []
            for i in range(start, start + n):
                key = b"key:%012d" % i
                cmds.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, size, value))
            s.sendall(b"".join(cmds))
            buf = b""
            while buf.count(b"\r\n") < n:
                data = s.recv(1 << 20)
                if not data:
                    raise RuntimeError("prefill: connection closed")
                buf += data
            if b"-" in buf[:1] or b"\r\n-" in buf:
                raise RuntimeError("prefill: SET refused: %s" % buf[:200].decode(errors="replace"))


def _median(reps):
    """Per-field medians over the repetitions that completed requests."""
    done = [x for x in reps if x.get("requests")]
    if not done:
        raise RuntimeError("no requests completed in %d repetition(s)" % len(reps))
    if len(reps) == 1:
        return done[0]
    done.sort(key=lambda x: x.get("server_us_per_req") or 0.0)
    out = dict(done[len(done) // 2])
    for k in done[0]:
        vals = [x.get(k) for x in done]
        vals = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if vals and len(vals) == len([x for x in done if x.get(k) is not None]):
            out[k] = statistics.median(vals)
    out["runs"] = [{k: v for k, v in x.items() if k != "counters"} for x in reps]
    if len(done) < len(reps):
        out["empty_repetitions"] = len(reps) - len(done)
    return out


def run_recovery(ctx, m, prog, tmp):
    """bench/recovery_bench.cpp (KV index recovery time, DRAM image), output kept verbatim."""
    binary = None
    for name in ("recovery_bench", "daxnet-recovery-bench", "recovery-bench"):
        p = os.path.join(ctx.bin_dir, name)
        if os.access(p, os.X_OK):
            binary = p
            break
    what = "recovery bench"
    prog.start(what)
    if binary is None:
        prog.finish(what, "not built (no recovery_bench in %s)" % ctx.bin_dir)
        return {"status": "not built", "output": ""}
    argv = [binary] + (["--keys", "200000"] if m["seconds"] < 5 else [])
    r = procs.run_client(argv, timeout=300, cpu=ctx.server_cpu, tmpdir=tmp)
    status = "ok" if r.rc == 0 else "failed (rc %s%s)" % (r.rc, ", timed out" if r.timed_out else "")
    prog.finish(what, status)
    return {"status": status, "output": (r.out + ("\n" + r.err if r.rc else "")).strip(),
            "argv": [os.path.basename(binary)] + argv[1:], "cpu_s": r.cpu, "wall_s": r.wall}


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_const", const="quick", dest="mode", help="< 5 minutes (default)")
    g.add_argument("--full", action="store_const", const="full", dest="mode", help="the whole matrix")
    g.add_argument("--smoke", action="store_const", const="smoke", dest="mode", help="a few seconds")
    g.add_argument("--guest", action="store_const", const="guest", dest="mode",
                   help="inside the QEMU guest: kernel vs uring vs epoll (bench/guest/guest-bench-transports.sh)")
    ap.add_argument("--bin-dir", default=os.path.join(REPO, "build", "bin"), help="where daxnet-* are")
    ap.add_argument("--out", default=None, help="docs directory to write (default: docs/, smoke: a temp dir)")
    ap.add_argument("--only", default="", help="comma-separated suites: rpc,wal,kv,mixed,slow,recovery")
    ap.add_argument("--servers", default="", help="comma-separated label prefixes, e.g. nginx,daxnet-httpd")
    ap.add_argument("--media", default="", help="kv and mixed suites: only these media (comma-separated, e.g. ext4)")
    ap.add_argument("--kv-sync", action="store_true",
                    help="also daxnet-kv epoll with --pipelined-commit false (row 'daxnet-kv epoll-sync')")
    ap.add_argument("--seconds", type=float, default=None, help="override the seconds per run")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--pool-size", default="1G", help="daxnet pool size for the services")
    ap.add_argument("--ext4-dir", default="/var/tmp", help="directory on the ext4 file system")
    ap.add_argument("--dax-dir", default="/tmp/pmem", help="--guest: directory on the DAX mount")
    ap.add_argument("--nice", type=int, default=0,
                    help="run servers and clients at this nice value (e.g. -5 on a busy machine; documented)")
    ap.add_argument("--no-docs", action="store_true", help="write results and plots but leave benchmarks.md")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
    ap.add_argument("--uring-plain", action="store_true",
                    help="also run the daxnet services on io_uring with the ring as before issue 15 (variant uring-plain)")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and the time estimate, run nothing")
    args = ap.parse_args()
    mode = args.mode or "quick"
    m = dict(MODES[mode])
    if args.seconds:
        m["seconds"] = args.seconds
        m["kv_seconds"] = args.seconds
    only = set(x for x in args.only.split(",") if x)
    server_filter = [x.strip() for x in args.servers.split(",") if x.strip()]

    for tool in ("taskset", "wrk", "redis-benchmark"):
        if not shutil.which(tool):
            print("bench: %s is missing (scripts/deps.sh installs the benchmark tools)" % tool)
            return 77 if mode == "smoke" else 2  # 77: CTest's skip code for bench_smoke

    if args.nice:
        os.nice(args.nice)  # inherited by every server, client and counter started from here
    tmp = tempfile.mkdtemp(prefix="daxbench-")
    out = args.out or (os.path.join(tmp, "out") if mode in ("smoke", "guest") else os.path.join(REPO, "docs"))
    ctx = Ctx(args, tmp)
    media_filter = [x for x in args.media.split(",") if x]
    jobs = plan(mode, ctx, only, server_filter, args.uring_plain, media_filter, args.kv_sync)
    total = sum(len(j.runs) for j in jobs) + (1 if m["recovery"] and (not only or "recovery" in only) else 0)
    est = estimate(jobs, m)
    meta = report.machine_info(REPO, mode, m, args)
    meta["nice"] = args.nice
    print("daxnet bench: %s mode, %d runs, about %s; server on cpu %d, client on cpu %d; bin %s"
          % (mode, total, _mmss(est), args.server_cpu, args.client_cpu, ctx.bin_dir))
    print("load average at start: %s" % meta["loadavg_start"])
    if args.dry_run:
        for j in jobs:
            srv = j.make_server()
            for r in j.runs:
                print("  " + _what(j, srv, r) + ("  [+ syscall count]" if r.get("count") else ""))
        shutil.rmtree(tmp, ignore_errors=True)
        return 0
    prog = Progress(total, est)
    rows = []
    recovery = None
    t0 = time.monotonic()
    try:
        for g in groups(jobs):
            run_group(g, ctx, m, prog, rows, tmp)
        if m["recovery"] and (not only or "recovery" in only):
            recovery = run_recovery(ctx, m, prog, tmp)
    finally:
        for medium in ("shm", "ext4", "dax", "slow0"):
            shutil.rmtree(ctx.medium_dir(medium), ignore_errors=True)
    meta["elapsed_s"] = time.monotonic() - t0
    meta["loadavg_end"] = report.loadavg()
    if ctx.build_log:
        meta["baseline_build_errors"] = ctx.build_log
    if mode == "guest":
        # The host collects these from the serial console (bench/guest/collect.py).
        import json
        print("DAXNET-BENCH-META " + json.dumps(meta, sort_keys=True), flush=True)
        for r in rows:
            print("DAXNET-BENCH-ROW " + json.dumps(r, sort_keys=True), flush=True)
    paths = report.write_all(out, meta, rows, recovery, docs=not args.no_docs and mode != "guest")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True) if mode != "smoke" else None
    print("done in %s: %s" % (_mmss(meta["elapsed_s"]), ", ".join(paths)))
    failed = [r for r in rows if r.get("status", "").startswith("failed")]
    if failed:
        print("%d run(s) failed; see the status column" % len(failed))
    if mode == "smoke":
        ok = [r for r in rows if r.get("status") == "ok"]
        shutil.rmtree(tmp, ignore_errors=True) if not args.keep else None
        return 0 if ok and not failed else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
