#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# Host side of the guest reliability tests (docs/reliability.md). Boots
# Debian's 6.1 kernel under QEMU/TCG exactly as tests/kernel/run-guest.sh
# does (its initramfs and guest-init, the host root read-only over 9p, an
# emulated NVDIMM) but runs tests/reliability/guest/guest-reliability.sh.
#
#   run-guest.sh --build DIR ringfuzz [--steps N]
#       one boot: daxnet_ringfuzz on a DAX pool and a shm pool; any
#       WARN/BUG/oops fails.
#   run-guest.sh --build DIR powercut [--cycles N] [--transport kernel|epoll|uring]
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
[ -n "$build" ] && [ -n "$mode" ] || { echo "usage: $0 --build DIR ringfuzz|powercut" >&2; exit 2; }

t0=$(date +%s)
say() { printf '[reliability-guest %4ds] %s\n' $(($(date +%s) - t0)) "$*"; }
skip() { say "SKIP: $*"; exit 77; }
kver=$(dpkg-query -W -f='${Depends}' linux-image-amd64 2>/dev/null | sed -E 's/^linux-image-([^ ,]+).*/\1/') || true
[ -n "$kver" ] && [ -r "/boot/vmlinuz-$kver" ] || skip "linux-image-amd64 is not installed"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86 is missing"
[ -f "$build/kernel/daxnet.ko" ] || skip "$build/kernel/daxnet.ko is not built"

work=$build/tests/reliability/guest
mkdir -p "$work"
kdir=$src/tests/kernel
key=$(cat "$kdir/mkinitramfs.sh" "$kdir/guest-init" | sha1sum | cut -c1-12)
initrd=$work/initramfs-$kver-$key.cpio.gz
if [ ! -f "$initrd" ]; then
	say "building the initramfs ($kver) with tests/kernel/mkinitramfs.sh"
	rm -f "$work"/initramfs-*.cpio.gz
	"$kdir/mkinitramfs.sh" "$kver" "$initrd"
fi

# boot LOG ARGS [KILL_AFTER_MARKER_S]: one guest boot; with a delay, kill -9
# QEMU that many seconds after the load announces itself.
boot() {
	local log=$1 args=$2 kill_after=${3:-}
	: >"$log"
	qemu-system-x86_64 \
		-accel tcg,thread=multi -smp 2 -machine pc,nvdimm=on \
		-m 2G,slots=2,maxmem=8G -net none \
		-kernel "/boot/vmlinuz-$kver" -initrd "$initrd" \
		-append "console=ttyS0 panic=-1 oops=panic quiet tsc=reliable dxrun=$here/guest-reliability.sh dxsrc=$src dxbuild=$build dxargs=$args" \
		-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
		-object "memory-backend-file,id=mem1,share=on,mem-path=$nvdimm,size=512M" \
		-device nvdimm,id=nv1,memdev=mem1 \
		-device pvpanic -action panic=exit-failure \
		-nographic -no-reboot </dev/null >"$log.raw" 2>&1 &
	local qpid=$! deadline=$(($(date +%s) + boot_timeout)) cut=0
	while kill -0 "$qpid" 2>/dev/null; do
		if [ -n "$kill_after" ] && [ "$cut" = 0 ] && grep -aq '^PC-LOAD-RUNNING' "$log.raw"; then
			cut=$(($(date +%s) + kill_after))
		fi
		if [ "$cut" != 0 ] && [ "$(date +%s)" -ge "$cut" ]; then
			# the power cut: QEMU dies with the guest's caches and queues
			kill -9 "$qpid" 2>/dev/null || true
			break
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			say "guest timed out after ${boot_timeout}s"
			kill -9 "$qpid" 2>/dev/null || true
			break
		fi
		sleep 0.5
	done
	local rc=0
	{ wait "$qpid"; } 2>/dev/null || rc=$?
	tr -d '\r' <"$log.raw" >"$log"
	rm -f "$log.raw"
	return $rc
}

verdict() {  # LOG: 0 when the guest passed every step
	local log=$1
	grep -a '^DAXNET-FAIL' "$log" && return 1
	grep -aq '^DAXNET-GUEST-EXIT 0' "$log" || { tail -n 40 "$log"; return 1; }
	return 0
}

nvdimm=$work/nvdimm.img
case "$mode" in
ringfuzz)
	rm -f "$nvdimm"
	truncate -s 512M "$nvdimm"
	say "booting $kver: ringfuzz, $steps steps per pool"
	boot "$work/ringfuzz.log" "ringfuzz,steps=$steps" || { say "FAIL: QEMU exit $? (panic?)"; tail -n 40 "$work/ringfuzz.log"; exit 1; }
	grep -a '^ringfuzz:\|^DAXNET-' "$work/ringfuzz.log" || true
	if verdict "$work/ringfuzz.log"; then say "PASS"; else say "FAIL"; exit 1; fi
	;;
powercut)
	rm -f "$nvdimm" "$work"/powercut.*.log
	truncate -s 512M "$nvdimm"
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
			boot "$log" "powercut-verify,boot=$b,transport=$transport,expect=$expect" ||
				{ say "FAIL: QEMU exit $?"; tail -n 40 "$log"; exit 1; }
		fi
		if grep -a '^DAXNET-FAIL\|^PC-FAIL' "$log"; then
			say "FAIL in boot $b"
			exit 1
		fi
		grep -a '^PC-VERIFIED' "$log" | sed 's/^/    /' || true
		# what this boot acknowledged (as far as the serial line carried it)
		grep -a '^PC-A ' "$log" >>"$expect" || true
	done
	verdict "$log" || { say "FAIL"; exit 1; }
	say "PASS: $cycles power cuts survived"
	;;
esac
