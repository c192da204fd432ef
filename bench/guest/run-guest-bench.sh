#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# Boots the daxnet test guest (Debian's 6.1 kernel under QEMU TCG, the
# initramfs and /init of tests/kernel/) with bench/guest/guest-run-bench.sh
# as its script, then turns the serial log into the guest section of
# docs/benchmarks.md (bench/guest/collect.py).
#
#   bench/guest/run-guest-bench.sh --build BUILD_DIR [--timeout 1800] [--no-docs]
#
# BUILD_DIR must hold kernel/daxnet.ko and bin/daxnet-httpd (a build with
# DAXNET_BUILD_KERNEL=ON). The guest runs the rpc and WAL workloads on the
# kernel, io_uring and epoll transports (bench/run.py --guest). Exit
# status: 0 done, 1 failed, 77 skipped (no kernel image, headers or QEMU).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=
timeout_s=1800
docs=1
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=$2; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--no-docs) docs=0; shift ;;
	*) echo "run-guest-bench: unknown argument $1" >&2; exit 2 ;;
	esac
done
[ -n "$build" ] || { echo "run-guest-bench: --build is required" >&2; exit 2; }
build=$(cd "$build" && pwd)
. "$src/tests/kernel/guest-lib.sh"
guest_init guest-bench
say() { guest_say "$@"; }
guest_require
[ -f "$build/kernel/daxnet.ko" ] || { say "FAIL: $build/kernel/daxnet.ko not built"; exit 1; }
[ -x "$build/bin/daxnet-httpd" ] || { say "FAIL: $build/bin/daxnet-httpd not built"; exit 1; }

work=$build/bench/guest
mkdir -p "$work"
guest_build_initramfs "$work"
guest_prepare_nvdimm "$work/nvdimm.img"
log=$work/serial.log
say "booting $GUEST_KVER under TCG (timeout ${timeout_s}s); serial log: $log"
qrc=0
guest_boot --run "$here/guest-run-bench.sh" --src "$src" --build "$build" --log "$log" --timeout "$timeout_s" \
	--show '^(daxnet-guest|DAXNET-(PASS|FAIL|GUEST)|\[ *[0-9]+/)' || qrc=$?
rm -f "$GUEST_NVDIMM"
say "qemu exit status $qrc"
if [ "$docs" = 1 ]; then
	python3 "$here/collect.py" "$log"
else
	python3 "$here/collect.py" "$log" --out "$work/out"
fi
grep -q '^DAXNET-GUEST-EXIT 0' "$log"
