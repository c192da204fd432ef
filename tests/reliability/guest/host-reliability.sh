#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# Host side of the guest reliability tests (docs/reliability.md). Boots
# Debian's 6.1 kernel under QEMU/TCG with tests/kernel/guest-lib.sh, as
# tests/kernel/host-kernel-tests.sh does (its initramfs and guest-init, the host root
# read-only over 9p, an emulated NVDIMM) but runs
# tests/reliability/guest/guest-reliability.sh.
#
#   host-reliability.sh --build DIR ringfuzz [--steps N]
#       one boot: daxnet_ringfuzz on a DAX pool and a shm pool; any
#       WARN/BUG/oops fails.
#   host-reliability.sh --build DIR powercut [--cycles N] [--transport kernel|epoll|uring]
#       N+1 boots on ONE NVDIMM image: each boot verifies what the boots
#       before it acknowledged, then loads daxnet-kv and daxnet-wal until
#       this script kills QEMU with kill -9 at a random moment; the last
#       boot only verifies.
#
# Exit status: 0 pass, 1 fail, 77 skipped (no kernel image, headers, QEMU).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../.." && pwd)
build=
mode=
steps=20000
cycles=10
transport=kernel
boot_timeout=600
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=$(cd "$2" && pwd); shift 2 ;;
	--steps) steps=$2; shift 2 ;;
	--cycles) cycles=$2; shift 2 ;;
	--transport) transport=$2; shift 2 ;;
	--timeout) boot_timeout=$2; shift 2 ;;
	ringfuzz | powercut) mode=$1; shift ;;
	*) echo "usage: $0 --build DIR ringfuzz|powercut [options]" >&2; exit 2 ;;
	esac
done
if [ -z "$build" ] || [ -z "$mode" ]; then echo "usage: $0 --build DIR ringfuzz|powercut" >&2; exit 2; fi

# shellcheck source=tests/kernel/guest-lib.sh
. "$src/tests/kernel/guest-lib.sh"
guest_init reliability-guest
# shellcheck disable=SC2119 # (no optional requirements)
guest_require
[ -f "$build/kernel/daxnet.ko" ] || guest_skip "$build/kernel/daxnet.ko is not built"

work=$build/tests/reliability/guest
mkdir -p "$work"
guest_build_initramfs "$work"

# boot LOG ARGS [KILL_AFTER_MARKER_S]: one guest boot on the NVDIMM of
# guest_prepare_nvdimm; with a delay, kill -9 QEMU (the power cut: it dies
# with the guest's caches and queues) that many seconds after the load
# announces itself (PC-LOAD-RUNNING).
boot() {
	local log=$1 args=$2 kill_after=${3:-} pidfile=$work/qemu.pid
	local -a opts=(--run "$here/guest-reliability.sh" --src "$src" --build "$build"
		--args "$args" --log "$log" --timeout "$boot_timeout" --show '')
	local rc=0 bpid cut=0
	rm -f "$log.raw"
	if [ -z "$kill_after" ]; then
		guest_boot "${opts[@]}" || rc=$?
	else
		# 2>/dev/null: no "Killed" notice from the shell after the cut
		guest_boot "${opts[@]}" --pidfile "$pidfile" 2>/dev/null &
		bpid=$!
		while kill -0 "$bpid" 2>/dev/null; do
			if [ "$cut" = 0 ] && grep -aq '^PC-LOAD-RUNNING' "$log.raw" 2>/dev/null; then
				cut=$(($(date +%s) + kill_after))
			fi
			if [ "$cut" != 0 ] && [ "$(date +%s)" -ge "$cut" ]; then
				guest_kill "$pidfile"
				break
			fi
			sleep 0.5
		done
		{ wait "$bpid"; } 2>/dev/null || rc=$?
	fi
	if [ "$rc" = 124 ]; then
		say "guest timed out after ${boot_timeout}s"
	fi
	return "$rc"
}

case "$mode" in
ringfuzz)
	guest_prepare_nvdimm "$work/nvdimm.img"
	say "booting $GUEST_KVER: ringfuzz, $steps steps per pool"
	rc=0
	boot "$work/ringfuzz.log" "ringfuzz,steps=$steps" || rc=$?
	grep -a '^ringfuzz:\|^DAXNET-' "$work/ringfuzz.log" || true
	guest_results "$work/ringfuzz.log" "$rc" "$boot_timeout" || exit 1
	say "PASS"
	;;
powercut)
	rm -f "$work"/powercut.*.log
	# ONE image for all the boots: what a boot acknowledged must survive
	# the power cuts that follow.
	guest_prepare_nvdimm "$work/nvdimm.img"
	expect=$work/powercut.expect
	: >"$expect"
	for ((b = 1; b <= cycles + 1; b++)); do
		log=$work/powercut.$b.log
		if [ "$b" -le "$cycles" ]; then
			delay=$((2 + RANDOM % 6))
			say "boot $b/$((cycles + 1)): verify, load, power cut ${delay}s into the load"
			boot "$log" "powercut-load,boot=$b,transport=$transport,expect=$expect" "$delay" || true
			if ! grep -aq '^PC-LOAD-RUNNING' "$log"; then
				say "FAIL: boot $b never started its load"
				grep -a '^DAXNET-\|^PC-FAIL\|Traceback' "$log" | tail -n 20
				tail -n 30 "$log"
				exit 1
			fi
		else
			say "boot $b/$((cycles + 1)): verify only"
			rc=0
			boot "$log" "powercut-verify,boot=$b,transport=$transport,expect=$expect" || rc=$?
			[ "$rc" = 0 ] || { say "FAIL: QEMU exit $rc"; tail -n 40 "$log"; exit 1; }
		fi
		if grep -a '^DAXNET-FAIL\|^PC-FAIL' "$log"; then
			say "FAIL in boot $b"
			exit 1
		fi
		grep -a '^PC-VERIFIED' "$log" | sed 's/^/    /' || true
		# what this boot acknowledged (as far as the serial line carried it)
		grep -a '^PC-A ' "$log" >>"$expect" || true
	done
	guest_results "$log" 0 "$boot_timeout" || exit 1
	say "PASS: $cycles power cuts survived"
	;;
esac
