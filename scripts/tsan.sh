#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# ThreadSanitizer check of the multi-threaded paths (docs/reliability.md):
#   1. builds the `tsan` preset (build/tsan: userlib, pmem, services, tests
#      with -fsanitize=thread);
#   2. runs the CTest label `threads` (several threads on one pool: shared
#      buffer source, one Port per thread with SO_REUSEPORT) and the label
#      `userlib` (every Port test, each with a peer thread, on uring and
#      epoll);
#   3. runs daxnet-httpd --workload rpc --threads 2 (one event loop per
#      thread on one pool) under wrk for a few seconds and stops it with
#      SIGTERM: a data race makes it exit 66.
# Any TSan report fails the run (halt_on_error=1, exit code 66).
#
#   scripts/tsan.sh              everything above (~1 min after the build)
#   scripts/tsan.sh --no-build   use the existing build/tsan
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=1
for a in "$@"; do
	case "$a" in
	--no-build) build=0 ;;
	*)
		echo "usage: $0 [--no-build]" >&2
		exit 2
		;;
	esac
done
start=$(date +%s)
step() { printf '\n=== [%4ds] tsan: %s\n' $(($(date +%s) - start)) "$*"; }

if [ "$build" = 1 ]; then
	step "build (preset tsan)"
	cmake --preset tsan >/dev/null
	# Only what the checks below run: the thread and Port tests, httpd.
	cmake --build --preset tsan -j "$(nproc)" \
		--target test_userlib_port test_userlib_threads daxnet-httpd | tail -1
fi

export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=66:second_deadlock_stack=1:history_size=4}

step "ctest -L 'threads|userlib'"
ctest --test-dir build/tsan -L 'threads|userlib' -LE slow --output-on-failure --timeout 300 -j 2

bin=build/tsan/bin/daxnet-httpd
if [ -x "$bin" ] && command -v wrk >/dev/null; then
	step "daxnet-httpd --workload rpc --threads 2 under wrk"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	"$bin" --pool "$tmp/pool" --pool-size 64M --port 0 --bind 127.0.0.1 --transport epoll \
		--workload rpc --threads 2 >"$tmp/out" 2>&1 &
	pid=$!
	port=
	for _ in $(seq 200); do
		port=$(sed -n 's/.*http=[0-9.]*:\([0-9]*\).*/\1/p' "$tmp/out" | head -1)
		[ -n "$port" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if [ -z "$port" ]; then
		echo "daxnet-httpd did not start:" >&2
		cat "$tmp/out" >&2
		kill -9 "$pid" 2>/dev/null || true
		exit 1
	fi
	wrk -t 2 -c 32 -d 5s "http://127.0.0.1:$port/" | sed -n '/Requests\/sec/p;/requests in/p'
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	if [ "$rc" != 0 ] || grep -q "ThreadSanitizer" "$tmp/out"; then
		echo "daxnet-httpd under TSan: exit $rc" >&2
		sed -n '1,200p' "$tmp/out" >&2
		exit 1
	fi
	echo "no data race reported"
fi
step "passed in $(($(date +%s) - start)) s"
