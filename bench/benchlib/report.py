# SPDX-License-Identifier: BSD-2-Clause
"""Results: JSON + CSV, gnuplot PNGs, and the generated parts of docs/benchmarks.md.

docs/benchmarks.md is part prose (written by people) and part generated:
each generated block sits between `<!-- bench:NAME begin -->` and
`<!-- bench:NAME end -->` and is replaced on every run; everything else is
kept. Blocks: machine, targets, rpc, wal, kv, recovery, plots.
"""

import csv
import datetime
import json
import os
import platform
import re
import shutil
import subprocess

CSV_FIELDS = ["suite", "server", "variant", "medium", "op", "size", "conns", "depth", "status", "requests",
              "duration_s", "rps", "p50_us", "p99_us", "server_us_per_req", "server_user_us_per_req",
              "server_sys_us_per_req", "server_schedstat_us_per_req", "softirq_server_core_us_per_req",
              "softirq_client_core_us_per_req", "client_us_per_req",
              "steady_server_us_per_req", "steady_rps", "server_util_pct", "other_cpu_pct", "steal_pct",
              "syscalls_per_req", "traced_syscalls_per_req", "trace_tool", "fences_per_req",
              "traced_persist_calls_per_req", "copied_bytes_per_req", "rx_bytes_per_req", "copied_per_rx_byte",
              "resp_bytes", "errors", "repeats",
              "server_info"]


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def _cmd(argv):
    try:
        r = subprocess.run(argv, capture_output=True, timeout=10)
        return (r.stdout + r.stderr).decode(errors="replace").strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_info(repo, mode, m, args):
    cpu = ""
    for line in _cmd(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = "%.1f GiB" % (int(f.readline().split()[1]) / 1048576)
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": mode,
        "seconds_per_run": m["seconds"],
        "repeats": m["repeats"],
        "cpu": cpu,
        "ncpu": os.cpu_count(),
        "memory": mem,
        "kernel": platform.release(),
        "git": _cmd(["git", "-C", repo, "rev-parse", "--short", "HEAD"]),
        "nginx": _cmd(["nginx", "-v"]).replace("nginx version: ", ""),
        "redis": _cmd(["redis-server", "--version"]).split(" sha=")[0],
        "wrk": _cmd(["wrk", "-v"]).splitlines()[0].split(" Copyright")[0] if _cmd(["wrk", "-v"]) else "",
        "redis_benchmark": "redis-benchmark (redis-tools)",
        "server_cpu": args.server_cpu,
        "client_cpu": args.client_cpu,
        "bin_dir": os.path.abspath(args.bin_dir),
        "loadavg_start": loadavg(),
        "keyspace": m["keyspace"],
        "target_repeats": m.get("target_repeats", 1),
    }


# ---------------------------------------------------------------- files


def write_all(out, meta, rows, recovery, docs=True):
    bdir = os.path.join(out, "bench")
    os.makedirs(bdir, exist_ok=True)
    paths = []
    jpath = os.path.join(bdir, "results.json")
    with open(jpath, "w") as f:
        json.dump({"meta": meta, "rows": rows, "recovery": recovery}, f, indent=1, sort_keys=True)
    paths.append(jpath)
    cpath = os.path.join(bdir, "results.csv")
    with open(cpath, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: _csv(r.get(k)) for k in CSV_FIELDS})
    paths.append(cpath)
    pngs = plots(bdir, rows)
    paths += pngs
    blocks = {
        "machine": machine_md(meta),
        "targets": targets_md(rows),
        "rpc": rpc_md(rows),
        "wal": wal_md(rows),
        "kv": kv_md(rows),
        "mixed": mixed_md(rows),
        "slow": slow_md(rows),
        "recovery": recovery_md(recovery),
        "plots": "\n".join("![%s](bench/%s)" % (os.path.basename(p)[:-4], os.path.basename(p)) for p in pngs)
                 or "_gnuplot not available: no plots_",
    }
    mdpath = os.path.join(out, "benchmarks.md")
    if docs:
        update_doc(mdpath, blocks)
        paths.append(mdpath)
    else:
        gen = os.path.join(bdir, "tables.md")
        with open(gen, "w") as f:
            for k, v in blocks.items():
                f.write("## %s\n\n%s\n\n" % (k, v))
        paths.append(gen)
    return paths


def _csv(v):
    if isinstance(v, float):
        return "%.4g" % v
    return "" if v is None else v


def update_doc(path, blocks):
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    else:
        text = "<!-- SPDX-License-Identifier: BSD-2-Clause -->\n# daxnet benchmarks\n\n" + "".join(
            "<!-- bench:%s begin -->\n<!-- bench:%s end -->\n\n" % (k, k) for k in blocks)
    for k, v in blocks.items():
        pat = re.compile(r"(<!-- bench:%s begin -->\n).*?(<!-- bench:%s end -->)" % (k, k), re.S)
        if pat.search(text):
            text = pat.sub(lambda mo: mo.group(1) + v.rstrip() + "\n" + mo.group(2), text)
        else:
            text += "\n<!-- bench:%s begin -->\n%s\n<!-- bench:%s end -->\n" % (k, v.rstrip(), k)
    with open(path, "w") as f:
        f.write(text)


# ---------------------------------------------------------------- tables


def fmt(v, nd=2):
    if v is None or v == "":
        return "–"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return "{:,.0f}".format(v)
        return "%.*f" % (nd, v)
    return str(v)


def kfmt(v):
    return "–" if v is None else "{:,.0f}".format(v)


def ratio(base, x):
    """How many times less CPU x uses than base (> 1: x is better)."""
    if not base or not x:
        return None
    return base / x


def label(r):
    return "%s %s" % (r["server"], r["variant"]) if r.get("variant") else r["server"]


def ok(r):
    return r.get("status") == "ok"


def table(head, lines):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in l) + " |" for l in lines]
    return "\n".join(out)


def syscalls_cell(r):
    own = r.get("syscalls_per_req")
    tr = r.get("traced_syscalls_per_req")
    if own is None and tr is None:
        return "–"
    parts = []
    if own is not None:
        parts.append(fmt(own, 3))
    if tr is not None:
        parts.append("%s (%s)" % (fmt(tr, 3), r.get("trace_tool", "traced")))
    return " / ".join(parts)


def cpu_cell(r):
    """'8.48 (1.2 + 7.3)': total server CPU µs/req (user + sys)."""
    t = r.get("server_us_per_req")
    if t is None:
        return "–"
    u, k = r.get("server_user_us_per_req"), r.get("server_sys_us_per_req")
    if u is None or k is None:
        return fmt(t)
    return "%s (%.1f + %.1f)" % (fmt(t), u, k)


def status_cell(r):
    s = r.get("status", "")
    if s == "ok":
        e = r.get("errors") or 0
        if e:
            det = ", ".join("%s %s" % (k.replace("err_", ""), v) for k, v in (r.get("err_detail") or {}).items())
            return "**%s client errors** (%s)" % ("{:,}".format(e), det) if det else "**%d client errors**" % e
        return ""
    return s.split(":")[0] if s.startswith("not built") else s[:80]


def machine_md(meta):
    lines = [
        ("date", meta["date"]), ("mode", "%s (%s s per run, %d repetition(s)%s, medians; nice %s)" % (
            meta["mode"], meta["seconds_per_run"], meta["repeats"],
            ", %d for the targets' configurations" % meta["target_repeats"] if meta.get("target_repeats", 1) > 1
            else "", meta.get("nice", 0))),
        ("CPU", "%s, %d cores (VM)" % (meta["cpu"], meta["ncpu"])), ("memory", meta["memory"]),
        ("kernel", meta["kernel"]), ("daxnet", "git %s, binaries from %s" % (meta["git"], meta["bin_dir"])),
        ("peers", "%s; %s" % (meta["nginx"], meta["redis"])),
        ("clients", "%s; %s" % (meta["wrk"], meta["redis_benchmark"])),
        ("pinning", "server on cpu %d, client on cpu %d (taskset)" % (meta["server_cpu"], meta["client_cpu"])),
        ("load average", "%s at start, %s at end" % (meta["loadavg_start"], meta.get("loadavg_end", "?"))),
        ("elapsed", "%.0f s" % meta.get("elapsed_s", 0)),
    ]
    return table(["", ""], lines)


def _find(rows, **kw):
    for r in rows:
        if all(r.get(k) == v for k, v in kw.items()) and ok(r):
            return r
    return None


def rpc_md(rows):
    rs = [r for r in rows if r["suite"] == "rpc"]
    if not rs:
        return "_not run_"
    lines = []
    for r in sorted(rs, key=lambda r: (r.get("depth", 1), r.get("conns", 0), label(r))):
        base = _find(rows, suite="rpc", server="nginx", conns=r["conns"], depth=r.get("depth", 1))
        rat = ratio(base and base.get("server_us_per_req"), r.get("server_us_per_req")) if ok(r) else None
        floor = _find(rows, suite="rpc", server="floor", variant="epoll", conns=r["conns"], depth=r.get("depth", 1))
        fl = (r["server_us_per_req"] / floor["server_us_per_req"]) if ok(r) and floor and floor.get(
            "server_us_per_req") and r.get("server_us_per_req") else None
        lines.append([label(r), r["conns"], r.get("depth", 1), kfmt(r.get("rps")), fmt(r.get("p50_us"), 0),
                      fmt(r.get("p99_us"), 0), cpu_cell(r), fmt(r.get("client_us_per_req")),
                      fmt(r.get("steady_server_us_per_req")), fmt(rat) + ("x" if rat else ""),
                      fmt(fl) + ("x" if fl else ""),
                      syscalls_cell(r), fmt(r.get("copied_bytes_per_req"), 0), fmt(r.get("resp_bytes"), 0),
                      fmt(r.get("other_cpu_pct"), 0), status_cell(r)])
    return table(["server", "conns", "pipeline", "req/s", "p50 µs", "p99 µs", "server CPU µs/req (user + sys)",
                  "client CPU µs/req", "steady server µs/req", "CPU vs nginx", "CPU / floor (epoll)",
                  "syscalls/req (own / traced)",
                  "CPU-copied B/req", "resp bytes", "other CPU %", "status"], lines)


def wal_md(rows):
    rs = [r for r in rows if r["suite"] == "wal"]
    if not rs:
        return "_not run_"
    lines = []
    for r in sorted(rs, key=lambda r: (r.get("medium", ""), r.get("depth", 1), r.get("conns", 0), label(r))):
        base = _find(rows, suite="wal", server="baseline-wal", medium=r.get("medium"), conns=r["conns"],
                     depth=r.get("depth", 1))
        rat = ratio(base and base.get("server_us_per_req"), r.get("server_us_per_req")) if ok(r) else None
        cp = r.get("copied_bytes_per_req")
        lines.append([label(r), r.get("medium"), r["conns"], r.get("depth", 1), kfmt(r.get("rps")),
                      fmt(r.get("p50_us"), 0), fmt(r.get("p99_us"), 0), cpu_cell(r),
                      fmt(r.get("client_us_per_req")), fmt(r.get("steady_server_us_per_req")),
                      fmt(rat) + ("x" if rat else ""), syscalls_cell(r), fmt(cp, 0),
                      fmt(r.get("copied_per_rx_byte")), fmt(r.get("fences_per_req"), 3),
                      fmt(r.get("other_cpu_pct"), 0), status_cell(r)])
    return table(["server", "medium", "conns", "pipeline", "req/s", "p50 µs", "p99 µs", "server CPU µs/req (user + sys)",
                  "client CPU µs/req", "steady server µs/req", "CPU vs baseline", "syscalls/req (own / traced)",
                  "CPU-copied B/req", "copied per received byte", "fences/req", "other CPU %", "status"], lines)


def kv_md(rows):
    rs = [r for r in rows if r["suite"] == "kv"]
    if not rs:
        return "_not run_"
    lines = []
    order = {"redis": 0, "daxnet-kv": 1}
    for r in sorted(rs, key=lambda r: (r.get("medium", ""), r.get("op", ""), r.get("size", 0), r.get("conns", 0),
                                       r.get("depth", 1), order.get(r["server"], 2), r.get("variant", ""))):
        base = _find(rows, suite="kv", server="redis", variant="aof-always", medium=r.get("medium"),
                     op=r.get("op"), size=r.get("size"), conns=r.get("conns"), depth=r.get("depth"))
        rat = ratio(base and base.get("server_us_per_req"), r.get("server_us_per_req")) if ok(r) else None
        rps_rat = (r.get("rps") / base["rps"]) if (ok(r) and base and base.get("rps")) else None
        fences = r.get("fences_per_req")
        persist = r.get("traced_persist_calls_per_req")
        lines.append([r.get("medium"), r.get("op"), r.get("size"), r.get("conns"), r.get("depth"), label(r),
                      kfmt(r.get("rps")), fmt(rps_rat) + ("x" if rps_rat else ""), fmt(r.get("p50_us"), 0),
                      fmt(r.get("p99_us"), 0), cpu_cell(r), fmt(r.get("client_us_per_req")),
                      fmt(rat) + ("x" if rat else ""), syscalls_cell(r), fmt(r.get("copied_bytes_per_req"), 0),
                      fmt(fences, 3) if fences is not None else (fmt(persist, 3) + " fsync" if persist is not None
                                                                 else "–"),
                      fmt(r.get("other_cpu_pct"), 0), status_cell(r)])
    return table(["medium", "op", "value B", "-c", "-P", "server", "req/s", "req/s vs always", "p50 µs",
                  "p99 µs", "server CPU µs/req (user + sys)", "client CPU µs/req", "CPU vs aof-always",
                  "syscalls/req (own / traced)", "CPU-copied B/req", "fences (or fsyncs)/req", "other CPU %", "status"], lines)


def recovery_md(rec):
    if not rec:
        return "_not run_"
    if rec.get("status") != "ok" and not rec.get("output"):
        return "_%s_" % rec.get("status")
    return "Command: `%s` (status: %s)\n\n```\n%s\n```" % (" ".join(rec.get("argv", [])), rec.get("status"),
                                                         rec.get("output", "").strip()[:6000])


def mixed_md(rows):
    """GET latency idle vs while other connections SET durably (suite mixed)."""
    rs = [r for r in rows if r["suite"] == "mixed" and r.get("load") == "idle"]
    if not rs:
        return "_not run_"
    lines = []
    for r in sorted(rs, key=lambda r: (r.get("medium"), label(r))):
        b = None
        for x in rows:
            if (x["suite"] == "mixed" and x.get("load") == "set" and x["server"] == r["server"]
                    and x.get("variant") == r.get("variant") and x.get("medium") == r.get("medium")):
                b = x
        if not ok(r) or not b or not ok(b):
            lines.append([label(r), r.get("medium"), r["conns"], "–", "–", "–", "–", "–", "–",
                          status_cell(r) or (status_cell(b) if b else "not run")])
            continue
        lines.append([label(r), r["medium"], r["conns"], kfmt(r["rps"]), fmt(r["p50_us"], 0), fmt(r["p99_us"], 0),
                      kfmt(b["rps"]), fmt(b["p50_us"], 0), fmt(b["p99_us"], 0),
                      "%.2fx" % (b["p99_us"] / r["p99_us"]) if r["p99_us"] else "–"])
    return table(["server", "medium", "GET conns", "idle req/s", "idle p50 µs", "idle p99 µs",
                  "req/s with SETs", "p50 µs with SETs", "p99 µs with SETs", "p99 with / idle"], lines)


def slow_md(rows):
    """SETs on an emulated slow medium (suite slow): tmpfs at page granularity plus a fixed delay
    per flush call (bench/slowflush.c), for daxnet and Redis alike."""
    rs = [r for r in rows if r["suite"] == "slow"]
    if not rs:
        return "_not run_"
    lines = []
    for r in sorted(rs, key=lambda r: (r["conns"], r["depth"], r["delay_us"], label(r))):
        if not ok(r):
            lines.append([r["delay_us"], label(r), r["conns"], r["depth"], "–", "–", "–", "–", "–", "–", "–",
                          status_cell(r)])
            continue
        base = _find(rows, suite="slow", server=r["server"], variant=r.get("variant"), delay_us=0, conns=r["conns"],
                     depth=r["depth"])
        red = _find(rows, suite="slow", server="redis", delay_us=r["delay_us"], conns=r["conns"], depth=r["depth"])
        fences = r.get("fences_per_req")
        lines.append([r["delay_us"], label(r), r["conns"], r["depth"], kfmt(r["rps"]),
                      "%.2fx" % (r["rps"] / base["rps"]) if base and base.get("rps") else "–",
                      "%.2fx" % (r["rps"] / red["rps"]) if red and red.get("rps") else "–",
                      fmt(r.get("p50_us"), 0), fmt(r.get("p99_us"), 0), cpu_cell(r),
                      fmt(fences, 3) if fences is not None else "–", status_cell(r)])
    return table(["flush delay µs", "server", "-c", "-P", "SET/s", "vs own at 0 µs", "vs Redis same delay",
                  "p50 µs", "p99 µs", "server CPU µs/req (user + sys)", "flushes/req", "status"], lines)


def targets_md(rows):
    """The issue's targets, each with the measured value and met/missed."""
    lines = []

    def add(target, measured, met):
        if isinstance(met, str):
            verdict = met
        else:
            verdict = "met" if met else ("missed" if met is not None else "not measured")
        lines.append([target, measured, verdict])

    # rpc at 100 connections
    ng = _find(rows, suite="rpc", server="nginx", conns=100, depth=1)
    best = None
    for t in ("uring", "epoll"):
        r = _find(rows, suite="rpc", server="daxnet-httpd", variant=t, conns=100, depth=1)
        if r and (best is None or r["server_us_per_req"] < best["server_us_per_req"]):
            best = r
    if ng and best:
        rat = ng["server_us_per_req"] / best["server_us_per_req"]
        add("rpc 100 conns: server CPU/req ≥ 1.3x lower than nginx (best transport)",
            "%.2fx (%s %.2f vs nginx %.2f µs)" % (rat, best["variant"], best["server_us_per_req"],
                                                  ng["server_us_per_req"]), rat >= 1.3)
        add("rpc 100 conns: req/s ≥ nginx", "%.2fx (%s vs %s)" % (best["rps"] / ng["rps"], kfmt(best["rps"]),
                                                                 kfmt(ng["rps"])), best["rps"] >= ng["rps"])
        add("rpc 100 conns: p99 ≤ nginx", "%s vs %s µs" % (fmt(best["p99_us"], 0), fmt(ng["p99_us"], 0)),
            best["p99_us"] <= ng["p99_us"])
    else:
        add("rpc 100 conns: server CPU/req ≥ 1.3x lower than nginx", "–", None)
    # KV vs Redis always, per medium and transport (issue 15: shm SET and GET >= 1.2x lower CPU/req,
    # ext4 SET >= 1.5x; req/s >= Redis)
    for medium, ops, want in (("shm", ("SET", "GET"), 1.2), ("ext4", ("SET",), 1.5)):
        for t in ("uring", "epoll"):
            rats, rps_ok, cnt = [], True, 0
            for r in rows:
                if (r["suite"] != "kv" or r["server"] != "daxnet-kv" or r.get("variant") != t
                        or r.get("medium") != medium or not ok(r)):
                    continue
                base = _find(rows, suite="kv", server="redis", variant="aof-always", medium=medium, op=r["op"],
                             size=r["size"], conns=r["conns"], depth=r["depth"])
                if not base:
                    continue
                cnt += 1
                if r["op"] in ops:
                    rats.append((base["server_us_per_req"] / r["server_us_per_req"], r))
                if r["rps"] < base["rps"]:
                    rps_ok = False
            what = "/".join(ops)
            if rats:
                lo = min(rats, key=lambda x: x[0])
                hi = max(rats, key=lambda x: x[0])
                add("KV %s %s: %s server CPU/req ≥ %.1fx lower than Redis appendfsync always" % (medium, t, what, want),
                    "%.2fx–%.2fx over %d configs (worst: %s d=%d -c %d -P %d)" % (
                        lo[0], hi[0], len(rats), lo[1]["op"], lo[1]["size"], lo[1]["conns"], lo[1]["depth"]),
                    lo[0] >= want)
                add("KV %s %s: req/s ≥ Redis always" % (medium, t), "%s of %d configs" % (
                    "all" if rps_ok else "not all", cnt), rps_ok)
            else:
                add("KV %s %s: %s server CPU/req ≥ %.1fx lower than Redis always" % (medium, t, what, want), "–",
                    None)
    # WAL at 100 connections vs the two-copy baseline (issue 15: >= 1.2x lower CPU/req)
    bw = _find(rows, suite="wal", server="baseline-wal", medium="shm", conns=100, depth=1)
    for t in ("uring", "epoll"):
        r = _find(rows, suite="wal", server="daxnet-httpd", variant=t, medium="shm", conns=100, depth=1)
        if bw and r:
            rat = bw["server_us_per_req"] / r["server_us_per_req"]
            add("WAL 100 conns %s: server CPU/req ≥ 1.2x lower than the two-copy baseline" % t,
                "%.2fx (%.2f vs %.2f µs)" % (rat, r["server_us_per_req"], bw["server_us_per_req"]), rat >= 1.2)
    # GET p99 under a concurrent durable SET load <= 2x idle (ext4)
    for t in ("uring", "epoll"):
        a = _find(rows, suite="mixed", server="daxnet-kv", variant=t, medium="ext4", load="idle")
        b = _find(rows, suite="mixed", server="daxnet-kv", variant=t, medium="ext4", load="set")
        ra = _find(rows, suite="mixed", server="redis", medium="ext4", load="idle")
        rb = _find(rows, suite="mixed", server="redis", medium="ext4", load="set")
        if a and b and a.get("p99_us"):
            red = (" (Redis always: %.2fx, %s vs %s µs)" % (rb["p99_us"] / ra["p99_us"], fmt(rb["p99_us"], 0),
                                                            fmt(ra["p99_us"], 0))) if ra and rb and ra.get("p99_us") else ""
            add("KV ext4 %s: GET p99 while SETs run ≤ 2x idle p99" % t,
                "%.2fx (%s vs %s µs)%s" % (b["p99_us"] / a["p99_us"], fmt(b["p99_us"], 0), fmt(a["p99_us"], 0), red),
                b["p99_us"] <= 2 * a["p99_us"])
    # distance to the floor (bench/floor_server.c) at 100 connections
    fl = _find(rows, suite="rpc", server="floor", variant="epoll", conns=100, depth=1)
    for srv, t in (("daxnet-httpd", "uring"), ("daxnet-httpd", "epoll"), ("nginx", ""), ("floor", "uring")):
        r = _find(rows, suite="rpc", server=srv, variant=t, conns=100, depth=1) if t else \
            _find(rows, suite="rpc", server=srv, conns=100, depth=1)
        if fl and r:
            add("rpc 100 conns: %s CPU/req relative to the epoll floor (< 1: below it)" % (srv + " " + t).strip(),
                "%.2f (%.2f vs %.2f µs)" % (r["server_us_per_req"] / fl["server_us_per_req"], r["server_us_per_req"],
                                            fl["server_us_per_req"]), "reference")
    # syscalls per request
    for t, lim in (("uring", 0.1), ("epoll", None)):
        r = _find(rows, suite="rpc", server="daxnet-httpd", variant=t, conns=100, depth=1)
        if lim is None:
            continue
        v = r and (r.get("syscalls_per_req") if r.get("syscalls_per_req") is not None
                   else r.get("traced_syscalls_per_req"))
        add("rpc 100 conns: syscalls/req ≤ %.2f (%s)" % (lim, t), fmt(v, 3) if v is not None else "–",
            (v <= lim) if v is not None else None)
    add("syscalls/req ≤ 0.05 (kernel transport)", "measured in the guest (the host cannot load the module)",
        "see Guest")
    # bytes the CPU copies per received byte (WAL, both sides count rx + log + tx copies)
    for server, variant in (("daxnet-httpd", "uring"), ("daxnet-httpd", "epoll"), ("baseline-wal", "epoll")):
        r = _find(rows, suite="wal", server=server, variant=variant, medium="shm", conns=100, depth=1)
        v = r and r.get("copied_per_rx_byte")
        if server == "baseline-wal":
            add("WAL: CPU-copied bytes per received byte, two-copy baseline (reference: ~2)",
                fmt(v) if v else "–", "reference" if v else None)
        else:
            add("WAL: CPU-copied bytes per received byte, %s %s = 1 (+ reply)" % (server, variant),
                fmt(v) if v else "–", (v <= 1.15) if v else None)
    # 10000 vs 100 connections
    for t in ("uring", "epoll"):
        a = _find(rows, suite="rpc", server="daxnet-httpd", variant=t, conns=100, depth=1)
        b = _find(rows, suite="rpc", server="daxnet-httpd", variant=t, conns=10000, depth=1)
        if a and b:
            ka = "steady_server_us_per_req" if a.get("steady_server_us_per_req") and b.get(
                "steady_server_us_per_req") else "server_us_per_req"
            d = b[ka] / a[ka] - 1
            err = (" — %s wrk errors: %s" % ("{:,}".format(b["errors"]), ", ".join(
                "%s %s" % (k.replace("err_", ""), v) for k, v in (b.get("err_detail") or {}).items()))
                   if b.get("errors") else "")
            add("rpc %s: CPU/req at 10000 conns within 10%% of 100 conns" % t,
                "%+.0f%% (%.2f vs %.2f µs, %s)%s" % (d * 100, b[ka], a[ka],
                                                     "steady window" if ka.startswith("steady") else "whole run",
                                                     err),
                abs(d) <= 0.10 and not b.get("errors"))
        else:
            add("rpc %s: CPU/req at 10000 conns within 10%% of 100 conns" % t, "–", None)
    add("guest: kernel transport CPU/req ≥ 2x lower than epoll, ≥ 1.3x lower than uring",
        "measured in the guest", "see Guest")
    return table(["target", "measured", "verdict"], lines)


# ---------------------------------------------------------------- plots


def plots(bdir, rows):
    if not shutil.which("gnuplot"):
        return []
    out = []
    out += _line_plot(bdir, rows, "rpc", "server_us_per_req", "rpc_cpu", "server CPU µs per request",
                      "rpc (44 B GET, 64 B body): server CPU per request")
    out += _line_plot(bdir, rows, "rpc", "rps", "rpc_rps", "requests/s",
                      "rpc: throughput (wrk, 1 thread, client-bound)")
    out += _line_plot(bdir, rows, "wal", "server_us_per_req", "wal_cpu", "server CPU µs per request",
                      "WAL (1 KiB POST persisted): server CPU per request", medium="shm")
    for medium in ("shm", "ext4"):
        out += _kv_plot(bdir, rows, "SET", "server_us_per_req", "kv_set_cpu_" + medium, "server CPU µs per SET",
                        medium)
        out += _kv_plot(bdir, rows, "SET", "rps", "kv_set_rps_" + medium, "SET requests/s", medium)
        out += _kv_plot(bdir, rows, "GET", "server_us_per_req", "kv_get_cpu_" + medium, "server CPU µs per GET",
                        medium)
    return out


def _gnuplot(script):
    try:
        r = subprocess.run(["gnuplot"], input=script.encode(), capture_output=True, timeout=60)
        return r.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _esc(s):
    return s.replace("_", "\\\\_")


def _line_plot(bdir, rows, suite, field, name, ylabel, title, medium=None):
    series = {}
    for r in rows:
        if r["suite"] != suite or not ok(r) or r.get("depth", 1) != 1 or r.get(field) is None:
            continue
        if (r.get("errors") or 0) > 0.01 * (r.get("requests") or 1):
            continue  # runs with client errors (refused connections) are in the tables, not the plots
        if medium and r.get("medium") != medium:
            continue
        series.setdefault(label(r), []).append((r["conns"], r[field]))
    series = {k: sorted(v) for k, v in series.items() if v}
    if not series:
        return []
    dat = os.path.join(bdir, name + ".dat")
    with open(dat, "w") as f:
        for k, pts in series.items():
            f.write("# %s\n" % k)
            for x, y in pts:
                f.write("%d %g\n" % (x, y))
            f.write("\n\n")
    png = os.path.join(bdir, name + ".png")
    plots_ = ", ".join("'%s' index %d using 1:2 with linespoints lw 2 pt 7 title '%s'" % (dat, i, _esc(k))
                       for i, k in enumerate(series))
    script = """set terminal pngcairo size 820,480 font ',10'
set output '%s'
set title '%s'
set logscale x 10
set xlabel 'connections (wrk -t1; runs with client errors omitted)'
set ylabel '%s'
set yrange [0:*]
set grid
set key outside right top
plot %s
""" % (png, _esc(title), ylabel, plots_)
    ok_ = _gnuplot(script)
    os.unlink(dat)
    return [png] if ok_ else []


def _kv_plot(bdir, rows, op, field, name, ylabel, medium):
    cats, servers_ = [], []
    vals = {}
    for r in rows:
        if r["suite"] != "kv" or r.get("op") != op or not ok(r) or r.get(field) is None:
            continue
        if r.get("medium") != medium:
            continue
        cat = "d=%d -c %d -P %d" % (r["size"], r["conns"], r["depth"])
        lab = label(r)
        if cat not in cats:
            cats.append(cat)
        if lab not in servers_:
            servers_.append(lab)
        vals[(cat, lab)] = r[field]
    if not cats:
        return []
    servers_.sort(key=lambda s: (0 if s.startswith("redis") else 1, s))
    dat = os.path.join(bdir, name + ".dat")
    with open(dat, "w") as f:
        f.write("cat " + " ".join('"%s"' % s for s in servers_) + "\n")
        for c in cats:
            f.write('"%s" ' % c + " ".join("%g" % vals[(c, s)] if (c, s) in vals else "NaN" for s in servers_) + "\n")
    png = os.path.join(bdir, name + ".png")
    cols = ", ".join("'%s' using %d:xtic(1) title '%s'" % (dat, i + 2, _esc(s)) for i, s in enumerate(servers_))
    script = """set terminal pngcairo size 980,500 font ',10'
set output '%s'
set title 'KV (redis-benchmark) on %s: %s (lower CPU is better)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -30
set bmargin 7
set ylabel '%s'
set yrange [0:*]
set grid ytics
set key outside right top
plot %s
""" % (png, medium, ylabel, ylabel, cols)
    ok_ = _gnuplot(script)
    os.unlink(dat)
    return [png] if ok_ else []
