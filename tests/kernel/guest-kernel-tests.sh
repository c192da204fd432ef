#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# Runs inside the test guest (chroot of the read-only host root; /tmp is a
# tmpfs). Environment from guest-init: DXSRC (source tree), DXBUILD (build
# tree), DXARGS (optional list of steps to run; default: all).
#
# Every step prints "DAXNET-PASS <step>" or "DAXNET-FAIL <step>"; the host
# runner (host-kernel-tests.sh) parses those lines and the final exit status.
set -u
# shellcheck source=tests/kernel/guest-common.sh
. "$DXSRC/tests/kernel/guest-common.sh"
ko=$DXBUILD/kernel/daxnet.ko
cd /tmp || exit 1
ktest=$DXBUILD/tests/kernel/daxnet_ktest
pmem=/tmp/pmem
# DXARGS: steps to run (default all); a word ktest.NAME runs the step ktest
# with only the daxnet_ktest tests named that way, services.NAME the step
# services with only the services_test.py tests named that way, and
# userlib.PREFIX the step userlib with only the Catch2 test cases whose
# names start with PREFIX (host-kernel-tests.sh --only
# ktest.conn_state,services.kv_isolation). A word ko=PATH loads that
# daxnet.ko instead of the build's (host-kernel-tests.sh --ko: the
# DKMS-built module); it names no step.
ktests=
stests=
utests=
steps=
for w in $DXARGS; do
	case "$w" in
	ktest.*) ktests="$ktests ${w#ktest.}" ;;
	services.*) stests="$stests ${w#services.}" ;;
	userlib.*) utests="${w#userlib.}*" ;;
	ko=*) ko=${w#ko=}; dkms=1; continue ;;
	esac
	steps="$steps $w"
done
DXARGS=${steps# }
export DXARGS
wanted() {
	[ -z "$DXARGS" ] && return 0
	has "$1" && return 0
	[ "$1" = ktest ] && [ -n "$ktests" ] && return 0
	[ "$1" = services ] && [ -n "$stests" ] && return 0
	[ "$1" = userlib ] && [ -n "$utests" ] && return 0
	return 1
}

# Run "$@" with a guest-side timeout (seconds, first argument), labelled.
run_step() {
	name=$1
	secs=$2
	shift 2
	say "step $name: $*"
	timeout -k 5 "$secs" "$@"
	rc=$?
	if [ $rc = 0 ]; then
		pass "$name"
	elif [ $rc = 124 ]; then
		fail "$name" "timed out after ${secs}s"
	else
		fail "$name" "exit status $rc"
	fi
	return $rc
}

say "kernel $(uname -r), $(nproc) cpus"
say "kernel arguments: $(cat /proc/cmdline)"
say "slub debug: kmalloc-64 sanity_checks=$(cat /sys/kernel/slab/kmalloc-64/sanity_checks 2>/dev/null) red_zone=$(cat /sys/kernel/slab/kmalloc-64/red_zone 2>/dev/null) poison=$(cat /sys/kernel/slab/kmalloc-64/poison 2>/dev/null) store_user=$(cat /sys/kernel/slab/kmalloc-64/store_user 2>/dev/null)"
ip link set lo up

# The emulated NVDIMM: raw namespace -> fsdax -> ext4 -o dax.
say "formatting the NVDIMM (fsdax, ext4)"
if mount_pmem $pmem 1; then
	pass format
else
	fail format
	exit 1
fi

if [ ! -f "$ko" ]; then
	fail insmod "$ko is missing"
	exit 1
fi
if load_daxnet "$ko"; then
	pass insmod
	say "loaded $ko: $(modinfo -F vermagic "$ko" 2>/dev/null), srcversion $(cat /sys/module/daxnet/srcversion 2>/dev/null)"
	# ko=PATH is the DKMS build, which has none of the test build's knobs:
	# prove that module, not the build's own, is the one running.
	if [ "${dkms:-0}" = 1 ]; then
		mountpoint -q /sys/kernel/debug ||
			mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
		if [ ! -e /sys/kernel/debug/daxnet/ports ] ||
			[ -e /sys/kernel/debug/daxnet/txq_max ]; then
			fail insmod "ko=$ko: not the DKMS build (test knobs in debugfs, or no daxnet/ports)"
			exit 1
		fi
		say "ko=$ko has no test knobs: the DKMS build runs"
	fi
else
	fail insmod "insmod failed or /dev/daxnet missing"
	dmesg | tail -n 20
	exit 1
fi

# ktest.ktls needs the kTLS module (the host root's modules: same kernel).
# (request_module() from the guest kernel would look in the initramfs.)
modprobe -a tls gcm ctr ghash_generic seqiv 2>/dev/null ||
	say "no tls/gcm modules: ktest.ktls skips"

if wanted ktest && [ -x "$ktest" ]; then
	# shellcheck disable=SC2086
	run_step ktest 600 "$ktest" --pool-dir $pmem --shm-dir /dev/shm \
		--rmmod-name daxnet $ktests
fi

# The userlib Port tests, every case on the kernel transport.
ut=$DXBUILD/tests/test_userlib_port
if wanted userlib && [ -x "$ut" ]; then
	# shellcheck disable=SC2086
	run_step userlib 600 env DAXNET_TEST_TRANSPORT=kernel "$ut" ${utests:+"$utests"}
fi

# The services' integration tests on the kernel transport, pools on the
# DAX mount.
st=$DXSRC/tests/services/services_test.py
if wanted services && [ -f "$st" ] && [ -x "$DXBUILD/bin/daxnet-kv" ]; then
	# shellcheck disable=SC2086
	run_step services 600 env TMPDIR=$pmem DAXNET_TEST_TRANSPORT=kernel \
		python3 "$st" --bin-dir "$DXBUILD/bin" --transport kernel --tmp $pmem $stests
fi

# The zero-copy tests (tests/kernel/zc/guest-zc.sh): daxnet vnic pair
# across two netns, zero-copy RX/TX on the DAX pool.
zc=$DXSRC/tests/kernel/zc/guest-zc.sh
if wanted zc && [ -x "$DXBUILD/tests/kernel/zc/zc_ring" ]; then
	run_step zc 900 env DXZC_SUITE=1 sh "$zc"
fi

if grep -q '^daxnet ' /proc/modules; then
	if rmmod daxnet; then pass rmmod; else fail rmmod; fi
fi

# Any kernel warning, BUG or oops during the run is a failure, and so is
# anything the debug boot (host-kernel-tests.sh: slub_debug=FZPU, KFENCE when
# built in, hung-task detector; lockdep when the kernel has it) reports.
check_dmesg
say "daxnet dmesg lines:"
dmesg | grep -i daxnet | tail -n 20
say "done"
exit $failed
