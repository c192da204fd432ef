#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# Boots the daxnet test guest (Debian's 6.1 kernel under QEMU TCG, the
# initramfs and /init of tests/kernel/) with bench/guest/guest-bench.sh
# as its script, then turns the serial log into the guest section of
# docs/benchmarks.md (bench/guest/collect.py).
#
#   bench/guest/host-bench.sh --build BUILD_DIR [--timeout 1800] [--no-docs]
#   bench/guest/host-bench.sh --build BUILD_DIR --icount [SHIFT] [--runs N]
#       [--perf | --perf-only] [--workloads rpc100,wal100,kv50,rpc1000]
#       [--transports kernel,uring,epoll] [--perf-workloads LIST]
#       [--perf-transports LIST] [--window S] [--settle S] [--kv N]
#       [--sched batch|other]
#       [--log FILE]
#
# --icount: the deterministic view. One vCPU, QEMU -icount shift=SHIFT
# (default 0: one instruction = 1 ns of guest time), align=off, sleep=off;
# bench/guest/icount_bench.py measures server CPU per request as virtual
# time (instruction counts), every configuration --runs times (default 5);
# collect.py --icount turns the log into the icount block of
# docs/benchmarks.md (repeatability, ratios, and with --perf the profile by
# layer). Without --icount: the 2-vCPU TCG view (bench/run.py --guest).
#
# BUILD_DIR must hold kernel/daxnet.ko and bin/daxnet-httpd (a build with
# DAXNET_BUILD_KERNEL=ON). The guest runs the rpc and WAL workloads on the
# kernel, io_uring and epoll transports (bench/run.py --guest). Exit
# status: 0 done, 1 failed, 77 skipped (no kernel image, headers or QEMU).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=
timeout_s=1800
docs=1
icount=
gargs=
log=
add() { gargs="${gargs:+$gargs,}$1"; }
while [ $# -gt 0 ]; do
	case "$1" in
	--icount)
		icount=0
		if [ $# -gt 1 ] && [[ $2 =~ ^[0-9]+$ ]]; then icount=$2; shift; fi
		shift ;;
	--runs) add "runs=$2"; shift 2 ;;
	--perf) add perf; shift ;;
	--perf-only) add perf-only; shift ;;
	--workloads) add "workloads=${2//,/+}"; shift 2 ;;
	--transports) add "transports=${2//,/+}"; shift 2 ;;
	--perf-workloads) add "perf-workloads=${2//,/+}"; shift 2 ;;
	--perf-transports) add "perf-transports=${2//,/+}"; shift 2 ;;
	--window) add "window=$2"; shift 2 ;;
	--settle) add "settle=$2"; shift 2 ;;
	--sched) add "sched=$2"; shift 2 ;;
	--kv) add "kv=$2"; shift 2 ;;
	--log) log=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--no-docs) docs=0; shift ;;
	*) echo "host-bench: unknown argument $1" >&2; exit 2 ;;
	esac
done
. "$src/tests/kernel/guest-lib.sh"
guest_build_arg host-bench
guest_init guest-bench
guest_require
[ -f "$build/kernel/daxnet.ko" ] || { say "FAIL: $build/kernel/daxnet.ko not built"; exit 1; }
[ -x "$build/bin/daxnet-httpd" ] || { say "FAIL: $build/bin/daxnet-httpd not built"; exit 1; }

work=$build/bench/guest
mkdir -p "$work"
guest_build_initramfs "$work"
guest_prepare_nvdimm "$work/nvdimm-$$.img"  # per run: two may run at once
mode=()
if [ -n "$icount" ]; then
	mode=(--smp 1 --icount "$icount")
	add icount
	add "shift=$icount"
	log=${log:-$work/icount-serial.log}
	load0=$(cut -d' ' -f1-3 /proc/loadavg)
	# The source tree's commit at the start (the binaries are whatever BUILD_DIR holds).
	git0=$(git -C "$src" describe --always --dirty 2>/dev/null || echo '?')
	t0=$(date +%s)
	say "host load before: $load0, $(nproc) cores"
else
	log=${log:-$work/serial.log}
fi
say "booting $GUEST_KVER under TCG ${icount:+(icount shift=$icount, 1 vCPU) }(timeout ${timeout_s}s); serial log: $log"
qrc=0
# Progress: guest_boot's --show passes through `tr`, which buffers; follow
# the raw console instead.
rm -f "$log.raw"
(tail -F -n +1 "$log.raw" 2>/dev/null |
	grep --line-buffered -a -E '^(daxnet-guest|DAXNET-(PASS|FAIL|GUEST))' | sed -u 's/\r$//') &
follow=$!
guest_boot --run "$here/guest-bench.sh" --src "$src" --build "$build" --log "$log" --timeout "$timeout_s" \
	--args "$gargs" "${mode[@]}" --show '' || qrc=$?
sleep 1
pkill -P "$follow" 2>/dev/null || true
kill "$follow" 2>/dev/null || true
rm -f "$GUEST_NVDIMM"
say "qemu exit status $qrc; host load after: $(cut -d' ' -f1-3 /proc/loadavg)"
copt=()
if [ -n "$icount" ]; then
	copt=(--icount)
	# The host's load, for the record (the icount figures do not depend on it).
	printf 'DAXNET-ICOUNT-HOST {"load_before": "%s", "load_after": "%s", "cores": %d, "real_s": %d, "date": "%s", "git": "%s"}\n' \
		"$load0" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)" $(($(date +%s) - t0)) \
		"$(date -u '+%Y-%m-%d %H:%M UTC')" "$git0" >>"$log"
fi
if [ "$docs" = 1 ]; then
	python3 "$here/collect.py" "${copt[@]}" "$log"
else
	python3 "$here/collect.py" "${copt[@]}" "$log" --out "$work/out"
fi
grep -q '^DAXNET-GUEST-EXIT 0' "$log"
