# SPDX-License-Identifier: BSD-2-Clause
# shellcheck shell=sh
#
# Helpers for the scripts that run INSIDE the test guest (sourced, POSIX sh;
# the guest runs them in a chroot of the host root, started by guest-init):
#   tests/kernel/guest-kernel-tests.sh, tests/reliability/guest/guest-reliability.sh,
#   bench/guest/guest-bench.sh
#   . "$DXSRC/tests/kernel/guest-common.sh"
# The host side (guest-lib.sh, the host-*.sh runners) parses the markers
# these print on the serial console.
#
#   say MSG...            "daxnet-guest [Ns] MSG" (N: seconds since sourced)
#   pass STEP             "DAXNET-PASS STEP"
#   fail STEP [WHY]       "DAXNET-FAIL STEP[: WHY]"; sets failed=1
#   has WORD              true if DXARGS holds WORD
#   opt NAME DEFAULT      the value of NAME=value in DXARGS, else DEFAULT
#   mount_pmem DIR [1]    mounts the emulated NVDIMM (fsdax, ext4 -o dax) at
#                         DIR; with 1, makes the namespace and file system first
#   load_daxnet KO        insmod KO; true if /dev/daxnet then exists
#   check_dmesg           step `dmesg`: fails on any kernel warning, BUG, oops
#                         or debug-boot report (slub_debug, KFENCE, hung
#                         task, lockdep) in the kernel log
# shellcheck disable=SC2034 # read by the sourcing script
failed=0
guest_t0=$(cut -d. -f1 /proc/uptime)

say() { echo "daxnet-guest [$(($(cut -d. -f1 /proc/uptime) - guest_t0))s] $*"; }
pass() { echo "DAXNET-PASS $1"; }
fail() { echo "DAXNET-FAIL $1${2:+: $2}"; failed=1; }

has() {
	for w in ${DXARGS:-}; do [ "$w" = "$1" ] && return 0; done
	return 1
}

opt() {
	for w in ${DXARGS:-}; do
		case "$w" in "$1"=*) echo "${w#*=}"; return ;; esac
	done
	echo "$2"
}

mount_pmem() {
	mkdir -p "$1"
	if [ "${2:-0}" = 1 ]; then
		ndctl create-namespace -f -e namespace0.0 --mode=fsdax >/dev/null &&
			mkfs.ext4 -q -F -b 4096 /dev/pmem0 || return 1
	fi
	mount -t ext4 -o dax=always /dev/pmem0 "$1"
}

load_daxnet() {
	insmod "$1" && [ -c /dev/daxnet ]
}

check_dmesg() {
	bad=$(dmesg | grep -E 'WARNING:|BUG:|BUG [A-Za-z0-9_:.-]+ \(|Oops|general protection|Call Trace|kernel BUG|UBSAN|refcount_t:|list_(add|del) corruption|stack-protector|KFENCE:|blocked for more than|circular locking|recursive locking|inconsistent lock state|suspicious RCU usage|Poison overwritten|Redzone overwritten|Object padding overwritten|Freepointer corrupt|FIX [A-Za-z0-9_:.-]+:')
	if [ -n "$bad" ]; then
		fail dmesg "kernel warnings:"
		dmesg | tail -n 80
	else
		pass dmesg
	fi
}
