#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# The guest's dxrun script for the benchmark boot (bench/guest/host-bench.sh):
# formats the emulated NVDIMM (fsdax, ext4 -o dax), loads daxnet.ko, runs
# bench/guest/guest-bench-transports.sh (or, with the word `icount` in DXARGS,
# bench/guest/icount_bench.py), unloads the module. Environment from
# tests/kernel/guest-init: DXSRC, DXBUILD, DXARGS (words: icount, perf,
# perf-only, runs=N, window=S, settle=S, kv=N, shift=S,
# workloads=a+b, transports=a+b,
# perf-workloads=a+b, perf-transports=a+b).
set -u
# shellcheck source=tests/kernel/guest-common.sh
. "$DXSRC/tests/kernel/guest-common.sh"
pmem=/tmp/pmem
say "kernel $(uname -r), $(nproc) cpus"
ip link set lo up
if mount_pmem $pmem 1; then
	pass format
else
	fail format
	exit 1
fi
if load_daxnet "$DXBUILD/kernel/daxnet.ko"; then
	pass insmod
else
	fail insmod
fi
icount=0
set --
for w in ${DXARGS:-}; do
	case $w in
	icount) icount=1 ;;
	perf) set -- "$@" --perf ;;
	perf-only) set -- "$@" --perf-only ;;
	runs=*) set -- "$@" --runs "${w#runs=}" ;;
	window=*) set -- "$@" --window "${w#window=}" ;;
	settle=*) set -- "$@" --settle "${w#settle=}" ;;
	sched=*) set -- "$@" --sched "${w#sched=}" ;;
	kv=*) set -- "$@" --kv-requests "${w#kv=}" ;;
	shift=*) set -- "$@" --icount-shift "${w#shift=}" ;;
	workloads=*) set -- "$@" --workloads "$(echo "${w#workloads=}" | tr + ,)" ;;
	transports=*) set -- "$@" --transports "$(echo "${w#transports=}" | tr + ,)" ;;
	perf-workloads=*) set -- "$@" --perf-workloads "$(echo "${w#perf-workloads=}" | tr + ,)" ;;
	perf-transports=*) set -- "$@" --perf-transports "$(echo "${w#perf-transports=}" | tr + ,)" ;;
	*) say "unknown DXARGS word $w" ;;
	esac
done
if [ $icount = 1 ]; then
	# Virtual time: the guest-side timeout counts instructions, not host seconds
	# (the host's --timeout bounds the real time).
	timeout -k 10 100000 python3 "$DXSRC/bench/guest/icount_bench.py" --bin-dir "$DXBUILD/bin" \
		--dax-dir $pmem/icount "$@"
else
	DXBENCH_DAX=$pmem timeout -k 10 1500 sh "$DXSRC/bench/guest/guest-bench-transports.sh"
fi
rc=$?
if [ $rc = 0 ]; then pass bench; else fail bench "exit status $rc"; fi
grep -q '^daxnet ' /proc/modules && rmmod daxnet
check_dmesg
exit $rc
