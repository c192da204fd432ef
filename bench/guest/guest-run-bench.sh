#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# The guest's dxrun script for the benchmark boot (bench/guest/run-guest-bench.sh):
# formats the emulated NVDIMM (fsdax, ext4 -o dax), loads daxnet.ko, runs
# bench/guest/guest_bench.sh, unloads the module. Environment from
# tests/kernel/guest-init: DXSRC, DXBUILD.
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
DXBENCH_DAX=$pmem timeout -k 10 1500 sh "$DXSRC/bench/guest/guest_bench.sh"
rc=$?
if [ $rc = 0 ]; then echo "DAXNET-PASS bench"; else echo "DAXNET-FAIL bench: exit status $rc"; fi
grep -q '^daxnet ' /proc/modules && rmmod daxnet
bad=$(dmesg | grep -E 'WARNING:|BUG:|Oops|general protection|Call Trace')
[ -n "$bad" ] && { echo "DAXNET-FAIL dmesg"; dmesg | tail -n 60; }
exit $rc
