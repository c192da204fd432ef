#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# Installs the Debian 12 packages daxnet needs, only those that are missing.
# Idempotent: when everything is present it returns in about a second and
# never touches the network. Nothing is downloaded from anywhere but the
# Debian archive configured in /etc/apt.
#
#   scripts/deps.sh            build + run + test dependencies (default)
#   scripts/deps.sh --run      only what building and running the services needs
set -euo pipefail

build_pkgs=(
	build-essential cmake ninja-build pkg-config
	libpmem2-dev liburing-dev libnuma-dev
	catch2 libcli11-dev libfmt-dev nlohmann-json3-dev liblua5.1-0-dev
)
test_pkgs=(
	clang libclang-rt-14-dev
	redis-tools redis-server wrk curl nginx-light strace
	tcl python3-redis
	libbenchmark-dev gnuplot-nox python3
	linux-headers-amd64 linux-image-amd64 linux-source-6.1
	qemu-system-x86 busybox-static ndctl daxctl
	iproute2 kmod cpio gzip xz-utils e2fsprogs util-linux procps psmisc ethtool
	dkms help2man nutcracker haproxy syslog-ng-core syslog-ng-mod-http
	systemd-container debootstrap
)

mode=${1:-all}
case "$mode" in
--run) want=("${build_pkgs[@]}") ;;
all | --all) want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
*)
	echo "usage: $0 [--run|--all]" >&2
	exit 2
	;;
esac

missing=()
for p in "${want[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#want[@]} packages present"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: ${missing[*]} (run as root to install them)" >&2
	exit 1
fi

echo "deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# The kernel image's postinst rebuilds an initramfs we never use; skip it.
export INITRD=No
apt_opts=(-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
apt-get "${apt_opts[@]}" update -qq
apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}"
# redis-server, nginx, haproxy, nutcracker and syslog-ng start themselves on install;
# daxnet's tests and benchmarks start their own instances on their own ports.
for svc in redis-server nginx haproxy nutcracker syslog-ng; do
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q "$svc" 2>/dev/null; then
		systemctl stop "$svc" || true
	fi
done
pkill -x redis-server 2>/dev/null || true
pkill -x nginx 2>/dev/null || true
for svc in haproxy nutcracker syslog-ng; do
	case " ${missing[*]} " in
	*" $svc "* | *" $svc-core "*) [ -x /etc/init.d/$svc ] && /etc/init.d/$svc stop >/dev/null 2>&1 || true ;;
	esac
done
echo "deps: done"
