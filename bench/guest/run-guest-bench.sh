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
kt=$src/tests/kernel
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
say() { echo "[guest-bench] $*"; }

kver=$(dpkg-query -W -f='${Depends}' linux-image-amd64 2>/dev/null |
	sed -E 's/^linux-image-([^ ,]+).*/\1/') || true
[ -n "$kver" ] && [ -r "/boot/vmlinuz-$kver" ] || { say "SKIP: linux-image-amd64 missing"; exit 77; }
command -v qemu-system-x86_64 >/dev/null || { say "SKIP: qemu-system-x86 missing"; exit 77; }
[ -f "$build/kernel/daxnet.ko" ] || { say "FAIL: $build/kernel/daxnet.ko not built"; exit 1; }
[ -x "$build/bin/daxnet-httpd" ] || { say "FAIL: $build/bin/daxnet-httpd not built"; exit 1; }

work=$build/bench/guest
mkdir -p "$work"
key=$(cat "$kt/mkinitramfs.sh" "$kt/guest-init" | sha1sum | cut -c1-12)
initrd=$work/initramfs-$kver-$key.cpio.gz
if [ ! -f "$initrd" ]; then
	say "building initramfs ($kver) with tests/kernel/mkinitramfs.sh"
	rm -f "$work"/initramfs-*.cpio.gz
	"$kt/mkinitramfs.sh" "$kver" "$initrd"
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
	-append "console=ttyS0 panic=-1 oops=panic quiet tsc=reliable dxrun=$here/guest-run-bench.sh dxsrc=$src dxbuild=$build" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-object "memory-backend-file,id=mem1,share=on,mem-path=$nvdimm,size=512M" \
	-device nvdimm,id=nv1,memdev=mem1 \
	-device pvpanic -action panic=exit-failure \
	-nographic -no-reboot </dev/null 2>&1 |
	tr -d '\r' | tee "$log" | grep --line-buffered -E '^(daxnet-guest|DAXNET-(PASS|FAIL|GUEST)|\[ *[0-9]+/)'
qrc=${PIPESTATUS[0]}
set -e
rm -f "$nvdimm"
say "qemu exit status $qrc"
if [ "$docs" = 1 ]; then
	python3 "$here/collect.py" "$log"
else
	python3 "$here/collect.py" "$log" --out "$work/out"
fi
grep -q '^DAXNET-GUEST-EXIT 0' "$log"
