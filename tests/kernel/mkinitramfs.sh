#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# Builds the busybox initramfs that boots Debian's kernel for the daxnet
# guest tests: busybox, the kernel modules needed for 9p, the emulated
# NVDIMM, ext4 and pvpanic, and tests/kernel/guest-init as /init.
#
#   mkinitramfs.sh KVER OUTPUT.cpio.gz
#
# The image only depends on KVER, this script and guest-init; the runner
# caches it in the build directory and rebuilds it when either changes.
set -euo pipefail

kver=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
mods=(pvpanic_mmio virtio_pci 9pnet_virtio 9p nfit nd_pmem dax_pmem ext4 veth)

work=$(mktemp -d "${out}.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,dev,proc,sys,host,tmp,etc}
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
	# A link named busybox would point at itself (ELOOP at exec).
	[ "$applet" = busybox ] && continue
	ln -sf busybox "$root/bin/$applet"
done
# request_module() runs /sbin/modprobe (ext4 asks for crc32c).
ln -sf ../bin/busybox "$root/sbin/modprobe"

# modprobe -C <empty dir>: ignore the host's modprobe.d, whose ndctl "install"
# rule for libnvdimm would hide the real dependency.
empty=$work/empty
mkdir -p "$empty"
for m in "${mods[@]}"; do
	modprobe -C "$empty" -S "$kver" --show-depends "$m"
done | awk '$1 == "insmod" { print $2 }' | awk '!seen[$0]++' >"$work/modlist"
while read -r ko; do
	mkdir -p "$root$(dirname "$ko")"
	cp "$ko" "$root$ko"
done <"$work/modlist"
cp /lib/modules/"$kver"/modules.builtin* /lib/modules/"$kver"/modules.order \
	"$root/lib/modules/$kver/"
depmod -b "$root" "$kver"

install -m 0755 "$here/guest-init" "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.tmp"
mv "$out.tmp" "$out"
