#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# Installs what is missing, builds, and runs every test: unit, pmem/crash,
# userlib transports, services against real clients, the kernel module in an
# emulated Debian 6.1 guest, bounded fuzzers, and the ASan/UBSan build.
#
#   scripts/test.sh            everything except the [slow] suite
#   scripts/test.sh --slow     the slow suite as well (long soak, 100-cycle loops)
#   DAXNET_SKIP=kernel,asan    skip parts while iterating (never in CI):
#                              kernel (the guest tests), asan, tsan, fuzz
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
slow=0
for a in "$@"; do
	case "$a" in
	--slow) slow=1 ;;
	*)
		echo "usage: $0 [--slow]" >&2
		exit 2
		;;
	esac
done
skip=",${DAXNET_SKIP:-},"
start=$(date +%s)
step() { printf '\n=== [%4ds] %s\n' $(($(date +%s) - start)) "$*"; }

step "dependencies"
scripts/deps.sh

# Everything is built above: the guest tests must not build in the tree
# while the packaging tests run cpack in it (tests/kernel/CMakeLists.txt).
export DAXNET_GUEST_NO_BUILD=1

# Services started by tests raise their own limits; make room for 10k sockets.
ulimit -n 65536 2>/dev/null || true

step "build (preset ci: -Werror)"
scripts/build.sh ci

step "tests (ctest preset ci: all labels but slow)"
if [[ $skip == *,kernel,* ]]; then
	# A -LE given with --preset replaces the preset's label filter; name both.
	ctest --test-dir build --output-on-failure -j 2 --timeout 1800 -LE 'kernel|slow'
else
	ctest --preset ci --timeout 1800
fi

if [ "$slow" = 1 ]; then
	step "slow suite"
	ctest --preset slow --timeout 7200
fi

if [[ $skip != *,asan,* ]]; then
	step "build (preset asan: ASan + UBSan)"
	scripts/build.sh asan
	step "tests under ASan + UBSan"
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --preset asan --timeout 900
fi

if [ -x scripts/tsan.sh ] && [[ $skip != *,tsan,* ]]; then
	step "TSan (threads, userlib, 2-thread httpd)"
	scripts/tsan.sh
fi

if [ -x scripts/fuzz.sh ] && [[ $skip != *,fuzz,* ]]; then
	step "fuzzers (bounded)"
	if [ "$slow" = 1 ]; then scripts/fuzz.sh --slow; else scripts/fuzz.sh --default; fi
fi

step "all tests passed in $(($(date +%s) - start)) s"
