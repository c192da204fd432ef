#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# Zero-copy guest tests: builds daxnet.ko from the working tree into
# BUILD/kmod, the test programs into BUILD/zc, and boots Debian's kernel
# under QEMU/TCG with the shared initramfs (tests/kernel/mkinitramfs.sh and
# guest-init, the kernel test runner's), running tests/kernel/zc/guest-zc.sh.
#
#   run-zc.sh [--build DIR] [--timeout SECONDS] [--only a,b] [--no-build]
#             [--svc-bin CMAKE_BUILD/bin]   (for zc.persist)
#
# Exit status: 0 pass, 1 fail, 77 skipped (no kernel image/headers/QEMU).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../.." && pwd)
build=$src/build-zc
timeout_s=600
only=
do_build=1
svcbin=
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=$2; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--only) only=$2; shift 2 ;;
	--no-build) do_build=0; shift ;;
	--svc-bin) svcbin=$2; shift 2 ;;
	*) echo "run-zc: unknown argument $1" >&2; exit 2 ;;
	esac
done
mkdir -p "$build"
build=$(cd "$build" && pwd)

t0=$(date +%s)
say() { printf '[zc-test %4ds] %s\n' $(($(date +%s) - t0)) "$*"; }
skip() { say "SKIP: $*"; exit 77; }

kver=$(dpkg-query -W -f='${Depends}' linux-image-amd64 2>/dev/null |
	sed -E 's/^linux-image-([^ ,]+).*/\1/') || true
[ -n "$kver" ] || skip "linux-image-amd64 is not installed"
[ -r "/boot/vmlinuz-$kver" ] || skip "/boot/vmlinuz-$kver is missing"
[ -d "/lib/modules/$kver/build" ] || skip "linux-headers-$kver are missing"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86 is missing"

work=$build/guest
mkdir -p "$work" "$build/zc" "$build/kmod"
# zc.persist runs the services from BUILD/bin (a CMake build's bin/).
if [ -n "$svcbin" ]; then
	rm -f "$build/bin"
	ln -s "$(cd "$svcbin" && pwd)" "$build/bin"
fi
if [ "$do_build" = 1 ]; then
	say "building daxnet.ko and the test programs"
	rm -rf "$build/kmod"/*
	cp -r "$src"/kernel/*.c "$src"/kernel/*.h "$src"/kernel/Kbuild \
		"$src"/kernel/include "$build/kmod/"
	make -s -C "/lib/modules/$kver/build" M="$build/kmod" modules \
		>"$work/build.log" 2>&1 || { cat "$work/build.log"; say "FAIL: module build"; exit 1; }
	cc -O2 -Wall -Wextra -Werror -o "$build/zc/zc_stream" "$here/zc_stream.c"
	cc -O2 -Wall -Wextra -Werror -I"$src/kernel/include/uapi" \
		-o "$build/zc/zc_ring" "$here/zc_ring.c"
fi
[ -f "$build/kmod/daxnet.ko" ] || { say "FAIL: no daxnet.ko"; exit 1; }

key=$(cat "$src/tests/kernel/mkinitramfs.sh" "$src/tests/kernel/guest-init" |
	sha1sum | cut -c1-12)
initrd=$work/initramfs-$kver-$key.cpio.gz
if [ ! -f "$initrd" ]; then
	say "building initramfs ($kver)"
	rm -f "$work"/initramfs-*.cpio.gz
	"$src/tests/kernel/mkinitramfs.sh" "$kver" "$initrd"
fi
nvdimm=$work/nvdimm.img
rm -f "$nvdimm"
truncate -s 512M "$nvdimm"

log=$work/serial.log
say "booting $kver under TCG (timeout ${timeout_s}s); serial log: $log"
set +e
timeout --foreground -k 10 "$timeout_s" qemu-system-x86_64 \
	-accel tcg,thread=multi -smp 2 -machine pc,nvdimm=on \
	-m 2G,slots=2,maxmem=8G -net none \
	-kernel "/boot/vmlinuz-$kver" -initrd "$initrd" \
	-append "console=ttyS0 panic=-1 oops=panic quiet tsc=reliable dxrun=$here/guest-zc.sh dxsrc=$src dxbuild=$build dxargs=$only" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-object "memory-backend-file,id=mem1,share=on,mem-path=$nvdimm,size=512M" \
	-device nvdimm,id=nv1,memdev=mem1 \
	-device pvpanic -action panic=exit-failure \
	-nographic -no-reboot </dev/null 2>&1 |
	tr -d '\r' | tee "$log" | grep --line-buffered -E '^(daxnet-guest|DAXNET-|guest-init|\[ *[0-9.]+\] )'
qrc=${PIPESTATUS[0]}
set -e

fails=$(grep -c '^DAXNET-FAIL' "$log" || true)
passes=$(grep -c '^DAXNET-PASS' "$log" || true)
exit_line=$(grep -a '^DAXNET-GUEST-EXIT' "$log" | tail -n 1 || true)
say "qemu exit status $qrc; $passes passed, $fails failed; ${exit_line:-no exit marker}"
if [ "$qrc" != 0 ]; then
	say "FAIL: guest timeout, panic or QEMU failure; last lines:"
	tail -n 40 "$log"
	exit 1
fi
if [ "$exit_line" != "DAXNET-GUEST-EXIT 0" ] || [ "$fails" != 0 ]; then
	say "FAIL"
	exit 1
fi
say "PASS"
