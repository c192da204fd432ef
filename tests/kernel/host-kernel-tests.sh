#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# The daxnet kernel test runner (CTest label `kernel`).
#
# The host kernel cannot load modules, so this boots Debian's
# linux-image-amd64 under QEMU (TCG) with guest-lib.sh, that is with
#   - a cached busybox initramfs (mkinitramfs.sh, guest-init),
#   - the host root read-only over 9p (the guest runs host-built binaries),
#   - an emulated NVDIMM, formatted once per run as fsdax + ext4 -o dax,
#   - a second one, 512 MiB, for the zero-copy suite's device-DAX step,
#   - pvpanic + oops=panic, so a kernel crash fails the run at once,
# and runs tests/kernel/guest-kernel-tests.sh in the guest, which loads daxnet.ko,
# runs the tests, checks dmesg and unloads the module. The guest reports on
# the serial console; this script parses the DAXNET-* marker lines.
#
#   host-kernel-tests.sh --build BUILD_DIR [--src SRC_DIR] [--targets "t1 t2"]
#                [--timeout SECONDS] [--only a,b] [--no-build] [--no-checkpatch]
#                [--ko PATH]
#
# --ko PATH: the guest loads that daxnet.ko instead of BUILD/kernel/daxnet.ko
# (the DKMS-built module: CTest kernel_dkms_guest); the host root is the
# guest's, so any host path works.
#
# DAXNET_GUEST_NO_BUILD=1 in the environment is --no-build: scripts/test.sh
# sets it (it built everything before ctest), so that no build runs in the
# build tree beside the packaging tests' cpack.
#
# Exit status: 0 pass, 1 fail, 77 skipped (no kernel image/headers/QEMU).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=
targets=
timeout_s=1440
only=
do_build=1
[ "${DAXNET_GUEST_NO_BUILD:-0}" = 1 ] && do_build=0
do_checkpatch=1
ko=
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=$2; shift 2 ;;
	--src) src=$2; shift 2 ;;
	--targets) targets=$2; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--only) only=$2; shift 2 ;;
	--no-build) do_build=0; shift ;;
	--no-checkpatch) do_checkpatch=0; shift ;;
	--ko) ko=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
	*) echo "host-kernel-tests: unknown argument $1" >&2; exit 2 ;;
	esac
done

# shellcheck source=tests/kernel/guest-lib.sh
. "$here/guest-lib.sh"
guest_build_arg host-kernel-tests
guest_init kernel-test
guest_require headers busybox
kver=$GUEST_KVER

work=$build/tests/kernel/guest
mkdir -p "$work"

if [ "$do_build" = 1 ] && [ -n "$targets" ]; then
	say "building: $targets"
	# shellcheck disable=SC2086
	cmake --build "$build" --target $targets >"$work/build.log" 2>&1 || {
		tail -n 60 "$work/build.log"
		say "FAIL: build"
		exit 1
	}
fi
if [ -n "$ko" ]; then
	[ -f "$ko" ] || { say "FAIL: $ko (--ko) does not exist"; exit 1; }
	say "the guest loads $ko"
	only=${only:+$only,}ko=$ko
else
	[ -f "$build/kernel/daxnet.ko" ] || { say "FAIL: $build/kernel/daxnet.ko was not built"; exit 1; }
fi

# checkpatch.pl --strict over the module's sources (the script ships in
# linux-source-6.1; extracted once into the build directory).
cpdir=$work/checkpatch
cp_tar=$(ls /usr/src/linux-source-*.tar.xz 2>/dev/null | head -n 1 || true)
if [ "$do_checkpatch" = 0 ]; then
	say "checkpatch skipped (--no-checkpatch)"
elif [ ! -x "$cpdir/scripts/checkpatch.pl" ] && [ -n "$cp_tar" ]; then
	say "extracting checkpatch.pl from $cp_tar"
	mkdir -p "$cpdir"
	tar -xJf "$cp_tar" -C "$cpdir" --strip-components=1 --wildcards \
		'*/scripts/checkpatch.pl' '*/scripts/spelling.txt' \
		'*/scripts/const_structs.checkpatch'
fi
if [ "$do_checkpatch" = 0 ]; then
	:
elif [ -x "$cpdir/scripts/checkpatch.pl" ]; then
	# The module's sources: the objects Kbuild links, and the headers.
	cp_files=$(sed -n -E 's/^daxnet-y[[:space:]]*[:+]?=//p' "$src/kernel/Kbuild" |
		tr ' ' '\n' | sed -n "s|^\(.*\)\.o\$|$src/kernel/\1.c|p")
	# shellcheck disable=SC2086
	if (cd "$work" && "$cpdir/scripts/checkpatch.pl" --strict --no-tree --terse -q \
		-f $cp_files "$src"/kernel/*.h) >"$work/checkpatch.log" 2>&1; then
		say "checkpatch --strict: clean"
	else
		cat "$work/checkpatch.log"
		say "FAIL: checkpatch --strict"
		exit 1
	fi
else
	say "checkpatch.pl not available (linux-source-6.1 missing): not checked"
fi

# The initramfs depends only on the kernel version and the two scripts.
guest_build_initramfs "$work"
# A fresh NVDIMM per run: the guest formats it (fsdax namespace, ext4).
guest_prepare_nvdimm "$work/nvdimm.img"

log=$work/serial.log
say "booting $kver under TCG (timeout ${timeout_s}s); serial log: $log"
qrc=0
# A debug boot (slub_debug, KFENCE if built in, hung-task detector):
# guest-kernel-tests.sh fails the run on anything they report.
dbg=$(guest_debug_cmdline)
say "debug kernel arguments: $dbg"
# A second emulated NVDIMM for the zero-copy suite's zc.devdax (the guest
# makes whichever is not namespace0.0 a device-DAX namespace). Guest RAM 2G
# plus both NVDIMMs stays within guest_boot's maxmem (8G) and its two
# memory slots.
guest_boot --run "$here/guest-kernel-tests.sh" --src "$src" --build "$build" --args "$only" \
	--cmdline "$dbg" --log "$log" --timeout "$timeout_s" --devdax "$work/nvdimm-devdax.img" || qrc=$?
guest_results "$log" "$qrc" "$timeout_s" || exit 1
say "PASS"
