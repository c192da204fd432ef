#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Turns the guest's serial log into the guest section of docs/benchmarks.md.

    tests/kernel/run-guest.sh --build build --only bench --timeout 1800
    bench/guest/collect.py build/tests/kernel/guest/serial.log [--out docs]

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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("serial_log")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.dirname(HERE)), "docs"))
    args = ap.parse_args()
    meta, rows = parse(args.serial_log)
    os.makedirs(os.path.join(args.out, "bench"), exist_ok=True)
    with open(os.path.join(args.out, "bench", "results-guest.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1, sort_keys=True)
    report.update_doc(os.path.join(args.out, "benchmarks.md"), {"guest": guest_md(meta, rows)})
    print("guest: %d rows -> %s" % (len(rows), os.path.join(args.out, "benchmarks.md")))
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
