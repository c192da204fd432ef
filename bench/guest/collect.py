#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Turns the guest's serial log into the guest section of docs/benchmarks.md.

    tests/kernel/host-kernel-tests.sh --build build --only bench --timeout 1800
    bench/guest/collect.py build/tests/kernel/guest/serial.log [--out docs]
    bench/guest/collect.py --icount build/bench/guest/icount-serial.log [--out docs]

--icount: reads the DAXNET-ICOUNT-* lines of bench/guest/icount_bench.py
(the deterministic 1-vCPU view), writes <out>/bench/results-guest-icount.json
and the `<!-- bench:guest-icount ... -->` block (and, when the log has a
profile pass, `<!-- bench:guest-profile ... -->`): server CPU per request
per run, its spread, the ratios between transports per run, the targets
of issue 16, and the profile by layer. Several logs may be given (their
rows are merged, e.g. a measurement log and a profile log).

Reads the DAXNET-BENCH-META / DAXNET-BENCH-ROW lines bench/run.py --guest
printed on the console, writes <out>/bench/results-guest.json and replaces
the `<!-- bench:guest ... -->` block of <out>/benchmarks.md with a table of
ratios: each transport's server CPU per request against epoll and against
uring (the guest runs 13-100x slower than the host under TCG, so absolute
figures are not comparable with the host tables and are not shown).
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from benchlib import report  # noqa: E402


def parse(path):
    meta, rows = None, []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip().replace("\r", "")
            if line.startswith("DAXNET-BENCH-META "):
                meta = json.loads(line[len("DAXNET-BENCH-META "):])
            elif line.startswith("DAXNET-BENCH-ROW "):
                rows.append(json.loads(line[len("DAXNET-BENCH-ROW "):]))
    return meta, rows


def guest_md(meta, rows):
    if not rows:
        return "_not measured: no DAXNET-BENCH-ROW lines in the guest log_"
    lines = []
    for r in sorted(rows, key=lambda r: (r["suite"], r.get("conns", 0), r.get("server", ""), r.get("variant", ""))):
        ep = report._find(rows, suite=r["suite"], server="daxnet-httpd", variant="epoll", conns=r.get("conns"),
                          depth=r.get("depth", 1))
        ur = report._find(rows, suite=r["suite"], server="daxnet-httpd", variant="uring", conns=r.get("conns"),
                          depth=r.get("depth", 1))
        mine = r.get("server_us_per_req") if report.ok(r) else None
        vs_ep = report.ratio(ep and ep.get("server_us_per_req"), mine)
        vs_ur = report.ratio(ur and ur.get("server_us_per_req"), mine)
        rps_ep = (r["rps"] / ep["rps"]) if (mine and ep and ep.get("rps")) else None
        lines.append([r["suite"], report.label(r), r.get("conns"), report.fmt(vs_ep) + ("x" if vs_ep else ""),
                      report.fmt(vs_ur) + ("x" if vs_ur else ""), report.fmt(rps_ep) + ("x" if rps_ep else ""),
                      report.fmt(r.get("syscalls_per_req"), 3), report.fmt(r.get("copied_per_rx_byte")),
                      report.fmt(r.get("fences_per_req"), 3), report.status_cell(r)])
    tlines = []
    for suite in ("rpc", "wal"):
        k = report._find(rows, suite=suite, server="daxnet-httpd", variant="kernel", conns=100, depth=1)
        e = report._find(rows, suite=suite, server="daxnet-httpd", variant="epoll", conns=100, depth=1)
        u = report._find(rows, suite=suite, server="daxnet-httpd", variant="uring", conns=100, depth=1)
        if k and e:
            v = e["server_us_per_req"] / k["server_us_per_req"]
            tlines.append(["%s 100 conns: kernel CPU/req ≥ 2x lower than epoll" % suite, "%.2fx" % v,
                           "met" if v >= 2 else "missed"])
        if k and u:
            v = u["server_us_per_req"] / k["server_us_per_req"]
            tlines.append(["%s 100 conns: kernel CPU/req ≥ 1.3x lower than uring" % suite, "%.2fx" % v,
                           "met" if v >= 1.3 else "missed"])
        if k and k.get("syscalls_per_req") is not None:
            v = k["syscalls_per_req"]
            tlines.append(["%s 100 conns: kernel syscalls/req ≤ 0.05" % suite, "%.3f" % v,
                           "met" if v <= 0.05 else "missed"])
    targets = report.table(["target (guest)", "measured", "verdict"], tlines) + "\n\n" if tlines else ""
    head = ("Guest: %s, kernel %s, %s s per run, %s. Ratios > 1: fewer CPU seconds per request than the "
            "reference transport (same guest, same run)." % (
                meta.get("cpu", "?") if meta else "?", meta.get("kernel", "?") if meta else "?",
                meta.get("seconds_per_run", "?") if meta else "?", meta.get("date", "?") if meta else "?"))
    return targets + head + "\n\n" + report.table(
        ["workload", "server", "conns", "CPU/req vs epoll", "CPU/req vs uring", "req/s vs epoll", "syscalls/req",
         "copied per received byte", "fences/req", "status"], lines)


def parse_icount(paths):
    meta, host, rows, profs = None, [], [], []
    for path in paths:
        with open(path, errors="replace") as f:
            for line in f:
                line = line.strip().replace("\r", "")
                for tag, dest in (("META", None), ("HOST", host), ("ROW", rows), ("PROFILE", profs)):
                    pre = "DAXNET-ICOUNT-%s " % tag
                    if line.startswith(pre):
                        try:
                            obj = json.loads(line[len(pre):])
                        except ValueError:
                            continue  # a line cut by the console
                        if dest is None:
                            meta = obj  # the last log's (give the measurement log last)
                        else:
                            dest.append(obj)
    return meta, host, rows, profs


ORDER = {"rpc100": 0, "rpc1000": 1, "wal100": 2, "kv50": 3}
TORDER = {"kernel": 0, "uring": 1, "epoll": 2, "baseline": 3}
TNAME = {"kernel": "kernel", "uring": "io_uring", "epoll": "epoll", "baseline": "two-copy baseline (epoll)"}


def _spread(vals):
    """(mean, max deviation from the mean in %)."""
    if not vals:
        return None, None
    m = sum(vals) / len(vals)
    return m, (max(abs(v - m) for v in vals) / m * 100.0 if m else None)


def _f(v, nd=0):
    return "–" if v is None else ("{:,.%df}" % nd).format(v)


def icount_md(meta, host, rows):
    if not rows:
        return "_not measured: no DAXNET-ICOUNT-ROW lines in the log_"
    def stalled(r):
        # wrk windows only: a redis-benchmark run is measured whole, and its
        # idle start (the client read over 9p) costs no CPU
        return r.get("stalled") or (r.get("suite") != "kv" and r.get("busy_pct") is not None
                                    and r["busy_pct"] < 50)

    good = [r for r in rows if r.get("server_ns_per_req") and not r.get("error") and not stalled(r)]
    runs = sorted({r["run"] for r in rows})
    keys = sorted({(r["workload"], r["transport"]) for r in rows}, key=lambda k: (ORDER.get(k[0], 9),
                                                                                 TORDER.get(k[1], 9)))

    def get(w, t, run, field="server_ns_per_req"):
        for r in good:
            if r["workload"] == w and r["transport"] == t and r["run"] == run:
                return r.get(field)
        return None

    out = []
    h = host[-1] if host else {}
    out.append("Guest: %s, kernel %s, %s vCPU, QEMU -icount shift=%s,align=off,sleep=off; window %s s "
               "(virtual) after %s s of load per wrk run, %s SETs per redis-benchmark run; %d runs, each "
               "with a fresh server and pool. Host: %s cores, load average %s before, %s after; %s s real; "
               "git %s, %s. Times are guest virtual ns (= instructions x 2^shift), exact to the "
               "instruction, so they do not depend on the host's load." % (
                   meta.get("cpu", "?"), meta.get("kernel", "?"), meta.get("cpus", "?"),
                   meta.get("icount_shift", "?"), meta.get("window_s"), meta.get("settle_s"),
                   meta.get("kv_requests"), len(runs), h.get("cores", "?"), h.get("load_before", "?"),
                   h.get("load_after", "?"), h.get("real_s", "?"), h.get("git", "?"), h.get("date", "?")))
    out.append("")
    # per-run server CPU per request, spread
    head = ["workload", "server"] + ["run %d" % r for r in runs] + [
        "mean", "spread", "syscalls/req", "client ns/req", "other ns/req", "fences/req", "copied B/req",
        "req/s (virtual)"]
    lines = []
    for w, t in keys:
        vals = [get(w, t, r) for r in runs]
        m, sp = _spread([v for v in vals if v])
        extra = []
        for fld, nd in (("syscalls_per_req", 3), ("client_ns_per_req", 0), ("other_ns_per_req", 0),
                        ("fences_per_req", 3), ("copied_per_req", 0), ("rps_virt", 0)):
            xs = [get(w, t, r, fld) for r in runs]
            xs = [x for x in xs if x is not None]
            extra.append(_f(sum(xs) / len(xs), nd) if xs else "–")
        errs = [r.get("error") for r in rows if r["workload"] == w and r["transport"] == t and r.get("error")]
        lines.append([w, TNAME.get(t, t) + (" (%d failed)" % len(errs) if errs else "")] +
                     [_f(v) for v in vals] + [_f(m), "±%.1f %%" % sp if sp is not None else "–"] + extra)
    out.append("**Server CPU per request (virtual ns), per run:**")
    out.append("")
    out.append(report.table(head, lines))
    out.append("")
    # ratios per run
    head = ["ratio (server CPU/req)"] + ["run %d" % r for r in runs] + ["mean", "spread"]
    lines = []
    tl = []
    for w in sorted({k[0] for k in keys}, key=lambda x: ORDER.get(x, 9)):
        for ref in ("epoll", "uring", "baseline"):
            vals = []
            for r in runs:
                k, e = get(w, "kernel", r), get(w, ref, r)
                vals.append(e / k if (k and e) else None)
            if not any(vals):
                continue
            m, sp = _spread([v for v in vals if v])
            lines.append(["%s: %s / kernel" % (w, TNAME[ref])] + [_f(v, 2) for v in vals] +
                         [_f(m, 2) + "x", "±%.1f %%" % sp if sp is not None else "–"])
            goal = {("rpc", "epoll"): 1.6, ("rpc", "uring"): 1.3, ("wal", "epoll"): 1.5, ("wal", "baseline"): 1.5,
                    ("kv", "epoll"): 1.5}.get((w.rstrip("0123456789"), ref))
            if goal:
                tl.append(["%s: kernel CPU/req >= %.1fx lower than %s" % (w, goal, TNAME[ref]), "%.2fx" % m,
                           "met" if m >= goal else "missed by %.0f %%" % ((goal / m - 1) * 100)])
        sc = [get(w, "kernel", r, "syscalls_per_req") for r in runs]
        sc = [x for x in sc if x is not None]
        if sc and w.startswith("rpc"):
            v = sum(sc) / len(sc)
            tl.append(["%s: kernel syscalls/req <= 0.05" % w, "%.3f" % v,
                       "met" if v <= 0.05 else "missed (%.1fx too many)" % (v / 0.05)])
    bad = [r for r in rows if stalled(r) or r.get("error")]
    if bad:
        out.append("**Excluded:** " + "; ".join(
            "%s %s run %s: %s" % (r["workload"], TNAME.get(r["transport"], r["transport"]), r["run"],
                                  ("error: " + r["error"][:120]) if r.get("error") else
                                  "stalled (vCPU %.1f %% busy in the window, %s requests)" % (
                                      r.get("busy_pct", 0), r.get("requests")))
            for r in bad) + ".")
        out.append("")
    out.append("**Ratios in the same run** (> 1: the kernel transport uses less server CPU per request):")
    out.append("")
    out.append(report.table(head, lines))
    out.append("")
    out.append("**Targets of issue 16** (mean of the runs):")
    out.append("")
    out.append(report.table(["target", "measured", "verdict"], tl))
    return "\n".join(out)


def profile_md(meta, profs, rows):
    """The layers of the server's CPU per request, from the folded stacks.

    The sampled ns are scaled so that the server's total equals its
    schedstat CPU per request (the mean over the measured runs when the log
    has them, else the profiled window's own): perf's start and end make the
    profiled window longer than the sampling, and the shares are what the
    samples give. The same factor scales the client's samples."""
    import icount_bench as ib
    profs = [p for p in profs if p.get("profile") and p["profile"].get("folded") and p.get("requests")]
    if not profs:
        return "_no profile pass in the log_"
    profs.sort(key=lambda p: (ORDER.get(p["workload"], 9), TORDER.get(p["transport"], 9)))
    cols, per = [], []
    for p in profs:
        lay = ib.layers(p["profile"]["folded"])
        srv = sum(lay.get("server", {}).values())
        runs = [r["server_ns_per_req"] for r in rows if r.get("server_ns_per_req") and not r.get("error")
                and r["workload"] == p["workload"] and r["transport"] == p["transport"]]
        target = sum(runs) / len(runs) if runs else p.get("server_ns_per_req")
        k = target / srv if srv else 0.0
        per.append({who: {l: v * k for l, v in d.items()} for who, d in lay.items()})
        cols.append("%s %s" % (p["workload"], TNAME.get(p["transport"], p["transport"])))
    lines = []
    for layer in ib.LAYERS:
        cells = [d.get("server", {}).get(layer, 0.0) for d in per]
        if any(c >= 0.5 for c in cells):
            lines.append([layer] + [_f(c) for c in cells])
    tot = [sum(d.get("server", {}).values()) for d in per]
    lines.append(["**server total** (= schedstat)"] + ["**%s**" % _f(t) for t in tot])
    sirq_s = [d.get("server", {}).get("softirq: loopback delivery to the peer", 0.0) for d in per]
    sirq_c = [d.get("client", {}).get("softirq: loopback delivery to the peer", 0.0) for d in per]
    two = [t - a + b for t, a, b in zip(tot, sirq_s, sirq_c)]
    lines.append(["server as on two hosts (its own receive softirq instead of the client's)"] +
                 [_f(t) for t in two])
    lines.append(["server without loopback softirq"] + [_f(t - a) for t, a in zip(tot, sirq_s)])
    lines.append(["client total (scaled alike)"] + [_f(sum(d.get("client", {}).values())) for d in per])
    samples = [sum(p["profile"]["folded"].values()) / 1e6 for p in profs]
    lines.append(["samples (ms of CPU sampled)"] + [_f(x) for x in samples])
    return ("`perf record -e cpu-clock -F %s -a -g` over one window per configuration in the icount guest; "
            "each sample's call chain is put in the first matching layer (bench/guest/icount_bench.py "
            "classify(), rules in the order of the rows). Server CPU per request in virtual ns.\n\n" % (
                meta.get("perf_freq", "2000") if meta else "?") +
            report.table(["layer (server process)"] + cols, lines))


def main_icount(args):
    meta, host, rows, profs = parse_icount(args.serial_log)
    meta = meta or {}
    os.makedirs(os.path.join(args.out, "bench"), exist_ok=True)
    with open(os.path.join(args.out, "bench", "results-guest-icount.json"), "w") as f:
        # the folded stacks stay in the log (large); the JSON keeps the layers
        slim = [dict(p, profile={k: v for k, v in p.get("profile", {}).items() if k != "folded"}) for p in profs]
        json.dump({"meta": meta, "host": host, "rows": rows, "profiles": slim}, f, indent=1, sort_keys=True)
    blocks = {}
    if rows:
        blocks["guest-icount"] = icount_md(meta, host, rows)
    if profs:
        blocks["guest-profile"] = profile_md(meta, profs, rows)
    if blocks:
        report.update_doc(os.path.join(args.out, "benchmarks.md"), blocks)
    if rows:
        print(icount_md(meta, host, rows))
    if profs:
        print(profile_md(meta, profs, rows))
    print("guest icount: %d rows, %d profiles -> %s" % (len(rows), len(profs), os.path.join(args.out,
                                                                                          "benchmarks.md")))
    return 0 if (rows or profs) else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("serial_log", nargs="+")
    ap.add_argument("--icount", action="store_true", help="the DAXNET-ICOUNT lines of icount_bench.py")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.dirname(HERE)), "docs"))
    args = ap.parse_args()
    if args.icount:
        return main_icount(args)
    args.serial_log = args.serial_log[0]
    meta, rows = parse(args.serial_log)
    os.makedirs(os.path.join(args.out, "bench"), exist_ok=True)
    with open(os.path.join(args.out, "bench", "results-guest.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1, sort_keys=True)
    report.update_doc(os.path.join(args.out, "benchmarks.md"), {"guest": guest_md(meta, rows)})
    print("guest: %d rows -> %s" % (len(rows), os.path.join(args.out, "benchmarks.md")))
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
