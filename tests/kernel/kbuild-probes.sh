#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# The Kbuild feature probes (dxn_have in kernel/Kbuild) must give the same
# answer whatever warnings the target kernel turns on: each probe compiles
# with -Werror, so a probe snippet that only warns (a non-static function
# without a prototype, under -Wmissing-prototypes, the default from 6.8)
# answers "absent" and the module is built for the wrong API. This builds
# daxnet_pool.o (it calls pin_user_pages() through daxnet_compat.h, whose
# arity the probe decides) from a copy of kernel/ with the extra warnings
# on the command line (KCFLAGS): a wrong answer does not compile.
#
#   kbuild-probes.sh SRC_DIR KDIR WORK_DIR
#
# Exit status: 0 pass, 1 fail, 77 skipped (no kernel headers).
set -euo pipefail
src=$1
kdir=$2
work=$3
[ -f "$kdir/Makefile" ] || { echo "no kernel headers at $kdir: skipped"; exit 77; }
rm -rf "$work"
mkdir -p "$work/include/uapi/linux"
cp "$src"/kernel/*.c "$src"/kernel/*.h "$src/kernel/Kbuild" "$work/"
cp "$src"/kernel/include/uapi/linux/*.h "$work/include/uapi/linux/"
extra="-Wmissing-prototypes -Wmissing-declarations -Wunused"
if ! make -s -C "$kdir" M="$work" KCFLAGS="$extra" daxnet_pool.o >"$work/build.log" 2>&1; then
	cat "$work/build.log"
	echo "FAIL: daxnet_pool.o does not build with KCFLAGS=\"$extra\" (a probe answered wrong)"
	exit 1
fi
echo "probes with KCFLAGS=\"$extra\": $(grep -o 'DXN_HAVE_[A-Z_]*' "$work/.daxnet_pool.o.cmd" | sort -u | tr '\n' ' ')"
echo PASS
