#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# Zero-copy bench (guest side): the rpc and wal workloads of daxnet-httpd
# with the client (wrk) and the server in two network namespaces joined by
# a daxnet vnic pair, so that the kernel transport's zero-copy mode can
# engage. One run compares four server modes:
#   kernel-zc   --transport kernel --zerocopy (payload lands in the pool,
#               published in place; replies by reference when >= 2 KiB)
#   kernel      --transport kernel (one kernel copy per byte)
#   uring       --transport uring
#   epoll       --transport epoll
# For each: requests/s (TCG: relative only), server CPU per request
# (/proc/PID/stat), bytes the CPU copied per request (the server's /stats:
# cpu_copied_bytes; for uring/epoll that counts user-space copies only, the
# kernel's recv copy is not visible to them - every received byte is copied
# once by the kernel there).
#
# Needs daxnet.ko loaded, root, iproute2, wrk, and DXBENCH_BIN with
# daxnet-httpd. Environment: DXBENCH_BIN (default $DXBUILD/bin),
# DXBENCH_DAX (pool directory, default /tmp/pmem), DXBENCH_SECONDS (default
# 4), DXBENCH_BODY (wal POST body bytes, default 4096).
# Prints one line per run:
#   ZC-BENCH workload=W mode=M requests=N rps=R server_us_per_req=U copied_per_req=C
set -u
bin=${DXBENCH_BIN:-$DXBUILD/bin}
dax=${DXBENCH_DAX:-/tmp/pmem}
secs=${DXBENCH_SECONDS:-4}
body=${DXBENCH_BODY:-4096}
httpd=$bin/daxnet-httpd
[ -x "$httpd" ] || { echo "zc_bench: $httpd missing" >&2; exit 1; }
command -v wrk >/dev/null || { echo "zc_bench: wrk missing" >&2; exit 1; }
hz=$(getconf CLK_TCK)

ip netns add zbc && ip netns add zbs &&
	ip link add zb type daxnet &&
	ip link set zb netns zbc && ip link set zbp netns zbs &&
	ip -n zbc addr add 10.77.9.1/24 dev zb && ip -n zbs addr add 10.77.9.2/24 dev zbp &&
	ip -n zbc link set lo up && ip -n zbs link set lo up &&
	ip -n zbc link set zb up && ip -n zbs link set zbp up || {
	echo "zc_bench: pair setup failed" >&2
	exit 1
}

lua=/tmp/zc_bench_post.lua
{
	echo 'wrk.method = "POST"'
	printf 'wrk.body = string.rep("x", %d)\n' "$body"
	echo 'wrk.headers["Content-Type"] = "application/octet-stream"'
} >$lua

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

for workload in rpc wal; do
	for mode in kernel-zc kernel uring epoll; do
		case $mode in
		kernel-zc) args="--transport kernel --zerocopy" ;;
		*) args="--transport $mode" ;;
		esac
		pool=$dax/zc_bench.pool
		rm -f "$pool"
		ip netns exec zbs "$httpd" --pool "$pool" --pool-size 96M --bind 10.77.9.2 \
			--port 8080 --workload $workload $args >/tmp/zc_bench.srv 2>&1 &
		spid=$!
		# Wait until it serves (creating the pool takes a while under TCG).
		n=0
		until ip netns exec zbc curl -s -m 2 -o /dev/null http://10.77.9.2:8080/stats; do
			n=$((n + 1))
			[ $n -lt 60 ] || { echo "zc_bench: $mode server did not start" >&2; cat /tmp/zc_bench.srv >&2; exit 1; }
			sleep 0.5
		done
		# Warm up (binds a zero-copy port to the vnic end).
		ip netns exec zbc timeout 10 wrk -t1 -c1 -d1s http://10.77.9.2:8080/ >/dev/null 2>&1
		t0=$(ticks $spid)
		before=$(ip netns exec zbc curl -s -m 10 http://10.77.9.2:8080/stats)
		if [ $workload = wal ]; then
			out=$(ip netns exec zbc timeout $((secs + 20)) wrk -t1 -c4 -d${secs}s -s $lua http://10.77.9.2:8080/ 2>&1)
		else
			out=$(ip netns exec zbc timeout $((secs + 20)) wrk -t1 -c4 -d${secs}s http://10.77.9.2:8080/ 2>&1)
		fi
		t1=$(ticks $spid)
		after=$(ip netns exec zbc curl -s -m 10 http://10.77.9.2:8080/stats)
		kill $spid
		wait $spid 2>/dev/null
		num() {
			v=$(echo "$1" | tr ',{}' '\n\n\n' | sed -n "s/^\"$2\":\([0-9]*\).*/\1/p")
			echo "${v:-0}"
		}
		req=$(($(num "$after" requests) - $(num "$before" requests) - 1))
		cp=$(($(num "$after" cpu_copied_bytes) - $(num "$before" cpu_copied_bytes)))
		rps=$(echo "$out" | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')
		[ "$req" -gt 0 ] || req=1
		echo "ZC-BENCH workload=$workload mode=$mode requests=$req rps=${rps:-0}" \
			"server_us_per_req=$(((t1 - t0) * 1000000 / hz / req))" \
			"copied_per_req=$((cp / req))"
		rm -f "$pool"
	done
done
ip netns del zbc
ip netns del zbs
