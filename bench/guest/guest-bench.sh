#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# The guest's dxrun script for the benchmark boot (bench/guest/host-bench.sh):
# formats the emulated NVDIMM (fsdax, ext4 -o dax), loads daxnet.ko, runs
# bench/guest/guest-bench-transports.sh (or, with the word `icount` in DXARGS,
# bench/guest/icount_bench.py), unloads the module. Environment from
# tests/kernel/guest-init: DXSRC, DXBUILD, DXARGS (words: icount, perf,
# perf-only, runs=N, window=S, settle=S, kv=N, shift=S,
# workloads=a+b, transports=a+b).
set -u
pmem=/tmp/pmem
say() { echo "daxnet-guest $*"; }
say "kernel $(uname -r), $(nproc) cpus"
ip link set lo up
if ndctl create-namespace -f -e namespace0.0 --mode=fsdax >/dev/null &&
	mkfs.ext4 -q -F -b 4096 /dev/pmem0 && mkdir -p $pmem &&
	mount -t ext4 -o dax=always /dev/pmem0 $pmem; then
	echo "DAXNET-PASS format"
else
	echo "DAXNET-FAIL format"
	exit 1
fi
if insmod "$DXBUILD/kernel/daxnet.ko" && [ -c /dev/daxnet ]; then
	echo "DAXNET-PASS insmod"
else
	echo "DAXNET-FAIL insmod"
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
if [ $rc = 0 ]; then echo "DAXNET-PASS bench"; else echo "DAXNET-FAIL bench: exit status $rc"; fi
grep -q '^daxnet ' /proc/modules && rmmod daxnet
bad=$(dmesg | grep -E 'WARNING:|BUG:|Oops|general protection|Call Trace')
[ -n "$bad" ] && { echo "DAXNET-FAIL dmesg"; dmesg | tail -n 60; }
exit $rc
