#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# Zero-copy guest tests: builds daxnet.ko from the working tree into
# BUILD/kmod, the test programs into BUILD/zc, and boots Debian's kernel
# under QEMU/TCG with tests/kernel/guest-lib.sh and the shared initramfs
# (tests/kernel/mkinitramfs.sh and guest-init, the kernel test runner's),
# running tests/kernel/zc/guest-zc.sh.
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

# shellcheck source=tests/kernel/guest-lib.sh
. "$here/../guest-lib.sh"
guest_init zc-test
guest_require headers
kver=$GUEST_KVER

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
	cc -O2 -Wall -Wextra -Werror -I"$src/kernel/include/uapi" \
		-o "$build/zc/zc_stream" "$here/zc_stream.c"
	cc -O2 -Wall -Wextra -Werror -I"$src/kernel/include/uapi" \
		-o "$build/zc/zc_ring" "$here/zc_ring.c"
	cc -O2 -Wall -Wextra -Werror -pthread -I"$src/kernel/include/uapi" \
		-o "$build/zc/zc_guard" "$here/zc_guard.c"
fi
[ -f "$build/kmod/daxnet.ko" ] || { say "FAIL: no daxnet.ko"; exit 1; }

guest_build_initramfs "$work"
guest_prepare_nvdimm "$work/nvdimm.img"

log=$work/serial.log
say "booting $kver under TCG (timeout ${timeout_s}s); serial log: $log"
qrc=0
# A second emulated NVDIMM for zc.devdax (device-DAX namespace).
guest_boot --run "$here/guest-zc.sh" --src "$src" --build "$build" --args "$only" \
	--log "$log" --timeout "$timeout_s" --cmdline "$(guest_debug_cmdline)" \
	--devdax "$work/nvdimm-devdax.img" || qrc=$?
guest_results "$log" "$qrc" "$timeout_s" || exit 1
say "PASS"
