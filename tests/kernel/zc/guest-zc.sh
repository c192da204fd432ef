#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# Zero-copy guest tests of daxnet.ko (run by tests/kernel/zc/run-zc.sh
# through the shared initramfs' /init). Environment: DXSRC, DXBUILD,
# DXARGS (optional list of steps). Prints DAXNET-PASS/DAXNET-FAIL lines.
#
# Steps:
#   vnic.pages   pair across two netns, TCP streams on ordinary pages
#   vnic.pool    the same with the vnic_test_pool hook: payload lands in
#                pool pages, which all come back after traffic
#   zc.rx        zc_stream client -> zc_ring server on a zero-copy port
#                (shared-memory pool): RX published in place, counters
#                checked
#   zc.tx        zc_ring client (zero-copy TX) -> zc_stream / zc_ring
#                server: MSG_ZEROCOPY batches complete after ACK, uncopied
#   zc.persist   daxnet-kv and daxnet-wal (BUILD/bin) with --zerocopy over
#                the pair, pools in shared memory: acknowledged writes
#                survive kill -9 (skipped when the services are not built)
#   zc.guard     zc_guard: duplicate and kernel-held buffer indices in the
#                spare ring and RX swaps of a bound zero-copy port are
#                refused (EINVAL, bad_buf); the stream still arrives intact
#   zc.xuser     two users: uid 2000 cannot put a port in zero-copy mode
#                (EPERM); root's zero-copy port bound to a vnic end, uid
#                2000's stream over the same end: its bytes never appear
#                in root's pool (rx_foreign counts its frames)
#   vnic.badsum  fault injection: frames of an attached zero-copy flow with
#                a wrong TCP checksum, put on the sending end with a packet
#                socket (unverified, like a bridged frame), are dropped by
#                the vnic and counted (rx_csum_bad), never reach the pool
#                or the socket (the server checks every byte)
#   zc.wake      lost wakeup: a 4-buffer zero-copy port receives 1 MiB,
#                sleeping in poll() (30 s limit) whenever a sync brought
#                nothing; only the recheck timer wakes it when vnic
#                buffers come back from freed skbs
#   zc.owe       a zero-copy TX batch sending one buffer 6 times owes 6
#                RELEASEs, counted once per buffer: they arrive while the
#                RELEASE queue cannot grow (debugfs fault knob), nothing
#                deferred (zc_guard owe)
#   zc.defer     zero-copy RELEASEs deferred for lack of memory (fault
#                knob) make poll() back off: at most ~10 reports a second,
#                then the RELEASEs arrive once the queue may grow
#                (zc_guard defer)
#   zc.limit     the RELEASEs zero-copy sends owe count against the
#                ENOBUFS rule's DXN_MAX_TXQ (lowered to 4 with the debugfs
#                knob txq_max): of 8 sends, 4 by reference, 2 by copy
#                (tx_zc_limited), 2 fail with ENOBUFS - the second of them
#                one that could go by copy, refused because it follows a
#                refused slot (no gap in the stream) (zc_guard limit)
#   zc.push      bytes sent with MSG_MORE before a slot refused with
#                ENOBUFS are pushed by that sync: no unsent byte on the
#                socket when it returns (SIOCOUTQNSD), over lo, with
#                nothing else in flight on it (zc_guard push)
#   vnic.csum    every TCP segment the vnic rebuilt carries a valid TCP
#                checksum (it is marked CHECKSUM_UNNECESSARY): captured
#                with a packet socket on the receiving end, GRO off
#   zc.devdax    zc.rx's stream and zc.tx's send on a device-DAX pool
#                (/dev/daxN.0 on a second emulated NVDIMM, ndctl devdax
#                namespace), then zc.persist's rounds with the device as
#                the services' pool (daxnet-pool create formats it; in
#                the kernel suite zc.persist then does not repeat them);
#                fails when there is no second NVDIMM (run-zc.sh and
#                the kernel suite, host-kernel-tests.sh, both add it;
#                DXZC_NO_DEVDAX=reason skips it, with the reason, for a
#                hand-made guest), and in the kernel suite when the
#                services are not built
#   zc.race      zc_guard race: a bound zero-copy port synced with random
#                spare entries and RX swaps (duplicates, held, junk) from
#                one thread while another polls, the connection is detached
#                and the port closed under them (4 s; dmesg must stay clean)
#   zc.empty     a zero-copy TX batch whose every send was refused
#                (full send buffer: EAGAIN) is freed at the next sync, never
#                kept waiting for an ACK of nothing (tx_zc_early), on a
#                connection over lo whose send sequence is in the upper
#                half of the sequence space (zc_guard empty)
#   zc.rxlimit   rx_limit on a zero-copy connection (connection-state
#                table): publishing stops exactly at each of 4 limits
#                (mostly inside a vnic buffer published in place) and
#                pauses with bytes pending, resumes when raised; lifted,
#                the rest arrives intact (zc_guard rxlimit)
#   zc.ctl       what root sees of the module: `ethtool -S` on a vnic end
#                (the driver's own counters, the same as sysfs; not the
#                standard ones `ip -s link` shows), debugfs daxnet/ports (a
#                zero-copy port's owner - pid 0 read from a new pid
#                namespace - pool, rings, counters and its connection's
#                line: addresses, state, bytes; root only, no kernel
#                addresses), and daxnetctl ports/links (--json)
#   rmmod, dmesg
#
# Two ways to run: standalone (tests/kernel/zc/run-zc.sh: formats the
# NVDIMM, loads BUILD/kmod/daxnet.ko, unloads it and checks dmesg itself),
# or inside the kernel guest suite (tests/kernel/guest-kernel-tests.sh with
# DXZC_SUITE=1: the suite formatted /tmp/pmem and loaded the module, and
# the programs come from the CMake build, BUILD/tests/kernel/zc).
set -u
suite=${DXZC_SUITE:-0}
ko=$DXBUILD/kmod/daxnet.ko
bin=$DXBUILD/zc
if [ "$suite" = 1 ]; then
	bin=$DXBUILD/tests/kernel/zc
	# The suite's step list names "zc"; keep only our own step names.
	DXARGS=$(for w in $DXARGS; do case $w in zc.* | vnic.*) echo "$w" ;; esac; done)
fi
zs=$bin/zc_stream
# say, pass, fail, mount_pmem, load_daxnet, check_dmesg (shared with the
# other guest scripts).
. "$DXSRC/tests/kernel/guest-common.sh"
wanted() {
	[ -z "$DXARGS" ] && return 0
	for w in $DXARGS; do [ "$w" = "$1" ] && return 0; done
	return 1
}
# ip netns needs a writable /run.
mount -t tmpfs -o mode=0755 run /run

# make_pair NAME NS_A NS_B: NAME in NS_A (10.77.N.1), NAMEp in NS_B (.2)
make_pair() {
	ip netns add "$2" && ip netns add "$3" &&
		ip link add "$1" type daxnet &&
		ip link set "$1" netns "$2" && ip link set "${1}p" netns "$3" &&
		ip -n "$2" addr add "10.77.$4.1/24" dev "$1" &&
		ip -n "$3" addr add "10.77.$4.2/24" dev "${1}p" &&
		ip -n "$2" link set lo up && ip -n "$3" link set lo up &&
		ip -n "$2" link set "$1" up && ip -n "$3" link set "${1}p" up
}

# The frame of a step on its own vnic pair: pair_begin DEV NS1 NS2 SUBNET
# makes the pair and sets ok (0: no pair); pair_end STEP NS1 DEV deletes
# it and reports STEP by $ok.
pair_begin() {
	ok=1
	make_pair "$@" || { ok=0; say "pair setup failed"; }
}
pair_end() {
	ip -n "$2" link del "$3" 2>/dev/null
	if [ $ok = 1 ]; then pass "$1"; else fail "$1" "see log"; fi
}

# zc_stream client (NS1, BYTES in 4 KiB writes) against "zc_guard MODE
# PORT" (NS2) on the pair pair_begin made (10.77.SUBNET.0/24), each under
# a SECS timeout: logs both and sets ok=0 on a FAIL line, zc_guard's exit
# status or a sum that differs. $out is the server's log (the caller's
# further checks; it removes it).
#   client_vs_guard STEP MODE NS1 NS2 SUBNET PORT BYTES SECS
client_vs_guard() {
	out=/tmp/${1#zc.}.$$
	ip netns exec "$4" timeout "$8" "$bin/zc_guard" "$2" "$6" >"$out" 2>&1 &
	spid=$!
	sleep 0.5
	cl=$(ip netns exec "$3" timeout "$8" "$zs" client "10.77.$5.2" "$6" "$7" 4096 2>&1)
	wait $spid || ok=0
	say "$1: $cl"
	while read -r line; do say "$1: $line"; done <"$out"
	grep -q FAIL "$out" && ok=0
	gs=$(sed -n 's/.* sum=\([0-9a-f]*\).*/\1/p' "$out")
	[ -n "$gs" ] && [ "${cl##*sum=}" = "$gs" ] || ok=0
}

# counter NS DEV NAME
counter() { ip netns exec "$1" cat "/sys/class/net/$2/daxnet/$3"; }

# stream LABEL NS_CLIENT NS_SERVER ADDR BYTES WSIZE [server options]:
# one checksummed stream; sets STREAM_OK=1 when sums match and bad=0.
stream() {
	label=$1 nsc=$2 nss=$3 addr=$4 bytes=$5 ws=$6
	shift 6
	out=/tmp/srv.$$
	ip netns exec "$nss" timeout 120 "$zs" server 7000 "$@" >"$out" 2>&1 &
	spid=$!
	sleep 0.3
	cl=$(ip netns exec "$nsc" timeout 120 "$zs" client "$addr" 7000 "$bytes" "$ws" 2>&1)
	wait $spid
	sv=$(grep 'server bytes' "$out")
	csum=${cl##*sum=}
	ssum=${sv##*sum=}
	say "$label: $cl | $sv"
	STREAM_OK=0
	case "$sv" in *" bad=0 "*)
		[ -n "$csum" ] && [ "$csum" = "$ssum" ] &&
			[ "${cl#*bytes=}" != "$cl" ] && STREAM_OK=1 ;;
	esac
	rm -f "$out"
}

say "kernel $(uname -r), $(nproc) cpus"
zr=$bin/zc_ring
pmem=/tmp/pmem
# Zero-copy pools: shared memory (or device DAX, zc.devdax). A file on the
# fsdax mount is refused in zero-copy mode (it may not be pinned long
# term; ktest.zc_fsdax checks the refusal).
zpool=/dev/shm/daxnet-zc
mkdir -p $zpool
if [ "$suite" = 1 ]; then
	: # the suite formatted and mounted $pmem and loaded daxnet.ko
elif mount_pmem $pmem 1; then
	pass format
else
	fail format
	exit 1
fi
if [ "$suite" = 1 ]; then
	grep -q '^daxnet ' /proc/modules || { fail zc "daxnet.ko not loaded"; exit 1; }
elif load_daxnet "$ko"; then pass insmod; else fail insmod; exit 1; fi

# ring_stream LABEL NS_CLIENT NS_SERVER ADDR BYTES WSIZE [zc_ring server
# options]: zc_stream client -> zc_ring server; sets STREAM_OK and RING_LINE.
ring_stream() {
	label=$1 nsc=$2 nss=$3 addr=$4 bytes=$5 ws=$6
	shift 6
	out=/tmp/ring.$$
	ip netns exec "$nss" timeout 120 "$zr" server 7001 $zpool/pool.$label "$@" >"$out" 2>&1 &
	spid=$!
	sleep 0.5
	cl=$(ip netns exec "$nsc" timeout 120 "$zs" client "$addr" 7001 "$bytes" "$ws" 2>&1)
	wait $spid
	RING_LINE=$(grep 'server bytes' "$out" | tail -n 1)
	say "$label: $cl"
	say "$label: $RING_LINE"
	csum=${cl##*sum=}
	ssum=$(echo "$RING_LINE" | sed -n 's/.* sum=\([0-9a-f]*\).*/\1/p')
	STREAM_OK=0
	case "$RING_LINE" in *" bad=0 "*)
		[ -n "$csum" ] && [ "$csum" = "$ssum" ] && STREAM_OK=1 ;;
	esac
	[ $STREAM_OK = 1 ] || cat "$out"
	rm -f "$out" $zpool/pool.$label
}
# field NAME LINE
field() { echo "$2" | sed -n "s/.* $1=\([0-9]*\).*/\1/p"; }

if wanted vnic.pages; then
	pair_begin dxa na nb 1
	say "$(ip -n nb -d link show dxap | head -3)"
	if [ $ok = 1 ]; then
		for c in "4194304 4096" "4194304 65536" "262144 64" "1048576 1000"; do
			set -- $c
			stream "pages $2B" na nb 10.77.1.2 "$1" "$2"
			[ $STREAM_OK = 1 ] || ok=0
		done
		segs=$(counter nb dxap rx_segs)
		pg=$(counter nb dxap rx_page_bytes)
		pool=$(counter nb dxap rx_pool_bytes)
		say "dxap rx_segs=$segs rx_page_bytes=$pg rx_pool_bytes=$pool tso_skbs_segmented=$(counter nb dxap tx_tso)"
		# every payload byte crossed the pair in ordinary pages
		[ "$pg" -ge 9699328 ] && [ "$pool" = 0 ] || ok=0
	fi
	pair_end vnic.pages na dxa
fi

if wanted vnic.pool; then
	ok=1
	echo 8192 >/sys/module/daxnet/parameters/vnic_test_pool
	make_pair dxc nc nd 2 || { ok=0; say "pair setup failed"; }
	echo 0 >/sys/module/daxnet/parameters/vnic_test_pool
	if [ $ok = 1 ]; then
		for c in "4194304 4096" "4194304 65536" "262144 64" "1048576 1000"; do
			set -- $c
			stream "pool $2B" nc nd 10.77.2.2 "$1" "$2"
			[ $STREAM_OK = 1 ] || ok=0
		done
		stream "pool lag+rb 4096B" nc nd 10.77.2.2 2097152 4096 --rcvbuf 65536 --lag-ms 20
		[ $STREAM_OK = 1 ] || ok=0
		pool=$(counter nd dxcp rx_pool_bytes)
		pg=$(counter nd dxcp rx_page_bytes)
		miss=$(counter nd dxcp rx_pool_miss)
		chunks=$(counter nd dxcp rx_pool_chunks)
		say "dxcp rx_pool_bytes=$pool rx_pool_chunks=$chunks rx_page_bytes=$pg rx_pool_miss=$miss"
		[ "$pool" -ge 11796480 ] && [ "$pg" = 0 ] || ok=0
		# Pages held by lazily freed skbs come back once the CPUs see
		# traffic again.
		busy=x
		for i in 1 2 3 4 5 6 7 8 9 10; do
			ip netns exec nc busybox ping -q -c 2 -i 0.2 10.77.2.2 >/dev/null 2>&1
			ip netns exec nd busybox ping -q -c 2 -i 0.2 10.77.2.1 >/dev/null 2>&1
			busy=$(counter nd dxcp test_pool_busy)
			[ "$busy" -le 1 ] && break
		done
		say "dxcp test_pool_busy=$busy after traffic (of $(counter nd dxcp test_pool_pages))"
		[ "$busy" -le 1 ] || ok=0
	fi
	pair_end vnic.pool nc dxc
fi

if wanted vnic.csum; then
	pair_begin dxu nu nv 9
	if [ $ok = 1 ]; then
		# (stream() sets $out: use another name)
		cout=/tmp/csum.$$
		ip netns exec nv timeout 60 "$bin/zc_guard" csum dxup 6 >"$cout" 2>&1 &
		cpid=$!
		sleep 0.5
		stream "csum 4096B" nu nv 10.77.9.2 1048576 4096
		[ $STREAM_OK = 1 ] || ok=0
		wait $cpid || ok=0
		line=$(grep 'good=' "$cout")
		say "vnic.csum: $line"
		[ -n "$line" ] || cat "$cout"
		[ "$(field good "$line")" -gt 100 ] && [ "$(field bad "$line")" = 0 ] || ok=0
		rm -f "$cout"
	fi
	pair_end vnic.csum nu dxu
fi

if wanted vnic.badsum; then
	pair_begin dxh nh1 nh2 12
	if [ $ok = 1 ]; then
		out=/tmp/badsum.$$
		bad0=$(counter nh2 dxhp rx_csum_bad)
		ip netns exec nh2 timeout 120 "$zr" server 7014 $zpool/pool.badsum >"$out" 2>&1 &
		spid=$!
		sleep 0.5
		cl=$(ip netns exec nh1 timeout 120 "$bin/zc_guard" badsum dxh 10.77.12.2 7014 1048576 64 2>&1)
		wait $spid
		sv=$(grep 'server bytes' "$out" | tail -n 1)
		bad1=$(counter nh2 dxhp rx_csum_bad)
		say "vnic.badsum: $cl"
		say "vnic.badsum: $sv"
		say "vnic.badsum: dxhp rx_csum_bad $bad0 -> $bad1, rx_pool_bytes=$(counter nh2 dxhp rx_pool_bytes)"
		# Exactly the 64 corrupt frames were dropped and counted (not the
		# control frame with a right checksum); the zero-copy server saw
		# only the pattern, byte for byte, in its pool buffers.
		[ "$(field sent "$cl")" = 64 ] && [ $((bad1 - bad0)) = 64 ] || ok=0
		case "$sv" in *" bad=0 "*mode=zc*) ;; *) ok=0; cat "$out" ;; esac
		[ "${cl##*sum=}" = "$(echo "$sv" | sed -n 's/.* sum=\([0-9a-f]*\).*/\1/p')" ] || ok=0
		rm -f "$out" $zpool/pool.badsum
	fi
	pair_end vnic.badsum nh1 dxh
fi

if wanted zc.wake; then
	pair_begin dxl nl1 nl2 13
	if [ $ok = 1 ]; then
		client_vs_guard zc.wake wake nl1 nl2 13 7015 1048576 300
		grep -q 'wake ok' "$out" || ok=0
		rm -f "$out"
	fi
	pair_end zc.wake nl1 dxl
fi

# zc_guard MODE (the step's name after "zc.") on a new vnic pair DEV
# (namespaces NS1 and NS2, 10.77.SUBNET.0/24) against "zc_guard sink" on
# PORT; SINKLOG=1 logs the sink's output as well.
#   guard_vs_sink STEP DEV NS1 NS2 SUBNET PORT SINKLOG
guard_vs_sink() {
	pair_begin "$2" "$3" "$4" "$5"
	if [ $ok = 1 ]; then
		out=/tmp/${1#zc.}.$$
		ip netns exec "$4" timeout 120 "$bin/zc_guard" sink "$6" >"$out" 2>&1 &
		spid=$!
		sleep 0.5
		ip netns exec "$3" timeout 120 "$bin/zc_guard" "${1#zc.}" "10.77.$5.2" "$6" >"$out.c" 2>&1 || ok=0
		wait $spid || ok=0
		while read -r line; do say "$1: $line"; done <"$out.c"
		if [ "$7" = 1 ]; then
			while read -r line; do say "$1: $line"; done <"$out"
		fi
		grep -q FAIL "$out.c" && ok=0
		rm -f "$out" "$out.c"
	fi
	pair_end "$1" "$3" "$2"
}

# zc_guard MODE (the step's name after "zc.") alone in a new netns NS,
# over lo: logs its output; fails on its exit status or a FAIL line.
#   guard_alone STEP NS
guard_alone() {
	ok=1
	ip netns add "$2" && ip -n "$2" link set lo up || { ok=0; say "netns setup failed"; }
	if [ $ok = 1 ]; then
		out=/tmp/${1#zc.}.$$
		ip netns exec "$2" timeout 120 "$bin/zc_guard" "${1#zc.}" >"$out" 2>&1 || ok=0
		while read -r line; do say "$1: $line"; done <"$out"
		grep -q FAIL "$out" && ok=0
		rm -f "$out"
	fi
	ip netns del "$2" 2>/dev/null
	if [ $ok = 1 ]; then pass "$1"; else fail "$1" "see log"; fi
}

if wanted zc.owe; then
	guard_vs_sink zc.owe dxo no1 no2 14 7016 1
fi

if wanted zc.defer; then
	guard_vs_sink zc.defer dxq nq1 nq2 15 7017 0
fi

if wanted zc.limit; then
	guard_vs_sink zc.limit dxt nli1 nli2 16 7018 1
fi

if wanted zc.push; then
	guard_alone zc.push npu
fi

if wanted zc.rx; then
	pair_begin dxe ne nf 3
	if [ $ok = 1 ]; then
		# One port per server process: the first (small) stream binds
		# the pool to dxep; later streams of the same port are measured.
		out=/tmp/zcrx.$$
		ip netns exec nf timeout 200 "$zr" server 7002 $zpool/pool.rx --count 4 >"$out" 2>&1 &
		spid=$!
		sleep 0.5
		i=0
		for c in "65536 4096" "4194304 4096" "4194304 65536" "262144 64"; do
			set -- $c
			cl=$(ip netns exec ne timeout 120 "$zs" client 10.77.3.2 7002 "$1" "$2" 2>&1)
			i=$((i + 1))
			# wait for the server's line of this stream
			for t in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
				[ "$(grep -c 'server bytes' "$out")" -ge $i ] && break
				sleep 0.5
			done
			sv=$(grep 'server bytes' "$out" | sed -n "${i}p")
			say "zc.rx $2B: $cl"
			say "zc.rx $2B: $sv"
			case "$sv" in *" bad=0 "*) ;; *) ok=0 ;; esac
			[ "${cl##*sum=}" = "$(echo "$sv" | sed -n 's/.* sum=\([0-9a-f]*\).*/\1/p')" ] || ok=0
			case "$sv" in *mode=zc*) ;; *) ok=0 ;; esac
			zcb=$(field rx_zc_bytes "$sv")
			cp=$(field rx_copied "$sv")
			# The per-connection counters say the same for this conn.
			cv=$(grep 'zc_ring: conn ' "$out" | sed -n "${i}p")
			[ "$(field rx_zc_bytes "$cv")" = "$zcb" ] && [ "$(field rx_copied "$cv")" = "$cp" ] ||
				{ ok=0; say "per-connection counters differ: $cv"; }
			say "zc.rx $2B: zero-copy fraction $zcb/$1 bytes, copied $cp"
			# >= 4 KiB writes, prompt receiver, bound pool: no copy
			# but of the bytes that arrived before ATTACH (their flow
			# was not attached: ordinary pages) and the frames then in
			# flight (at most 256 KiB)
			pre=$(echo "$cv" | sed -n 's/.* pre_attach=\([0-9]*\).*/\1/p')
			say "zc.rx $2B: bytes queued before ATTACH: $pre"
			if [ $i -ge 2 ] && [ "$2" -ge 4096 ] && [ "$cp" -gt $((${pre:-0} + 262144)) ]; then ok=0; fi
		done
		wait $spid
		rm -f "$out" $zpool/pool.rx
		say "dxep rx_pool_bytes=$(counter nf dxep rx_pool_bytes) rx_page_bytes=$(counter nf dxep rx_page_bytes) rx_pool_miss=$(counter nf dxep rx_pool_miss)"
		ring_stream lag ne nf 10.77.3.2 1048576 4096 --lag-ms 20
		[ $STREAM_OK = 1 ] || ok=0
		say "zc.rx lag 4096B (new port: first bytes before binding are copied): zc $(field rx_zc_bytes "$RING_LINE") copied $(field rx_copied "$RING_LINE") head $(field rx_copy_head "$RING_LINE")"
		# A slow receiver with a small receive buffer: TCP collapses
		# under rmem pressure; zero-copy and copied slots interleave.
		for ws in 64 4096; do
			ring_stream lagrb$ws ne nf 10.77.3.2 1048576 $ws --lag-ms 20 --rcvbuf 65536
			[ $STREAM_OK = 1 ] || ok=0
			say "zc.rx lag+rb ${ws}B: zc $(field rx_zc_bytes "$RING_LINE") copied $(field rx_copied "$RING_LINE") (head $(field rx_copy_head "$RING_LINE"), other $(field rx_copy_other "$RING_LINE"))"
		done
	fi
	pair_end zc.rx ne dxe
fi

if wanted zc.tx; then
	pair_begin dxg ng nh 4
	if [ $ok = 1 ]; then
		for c in "4194304 4096 plain" "4194304 4096 ring" "262144 1000 plain"; do
			set -- $c
			out=/tmp/zctx.$$
			if [ "$3" = plain ]; then
				ip netns exec nh timeout 120 "$zs" server 7003 >"$out" 2>&1 &
			else
				ip netns exec nh timeout 120 "$zr" server 7003 $zpool/pool.txs >"$out" 2>&1 &
			fi
			spid=$!
			sleep 0.5
			cl=$(ip netns exec ng timeout 120 "$zr" client 10.77.4.2 7003 $zpool/pool.tx "$1" "$2" 2>&1)
			wait $spid
			sv=$(grep 'server bytes' "$out")
			say "zc.tx $2B -> $3: $cl"
			say "zc.tx $2B -> $3: $sv"
			csum=$(echo "$cl" | sed -n 's/.* sum=\([0-9a-f]*\).*/\1/p')
			ssum=$(echo "$sv" | sed -n 's/.* sum=\([0-9a-f]*\).*/\1/p')
			case "$sv" in *" bad=0 "*) ;; *) ok=0 ;; esac
			[ -n "$csum" ] && [ "$csum" = "$ssum" ] || ok=0
			case "$cl" in *mode=zc*) ;; *) ok=0 ;; esac
			# Nothing copied behind our back; every buffer came back
			# (zc_ring waits for that). tx_zc_early: completions TCP
			# signalled before the ACK, held back until the ACK.
			[ "$(field tx_zc_copied "$cl")" = 0 ] || ok=0
			say "zc.tx $2B -> $3: early completions held until ACK: $(field tx_zc_early "$cl")"
			if [ "$2" -ge 4096 ]; then
				[ "$(field tx_zc_bytes "$cl")" = "$1" ] && [ "$(field tx_copied "$cl")" = 0 ] || ok=0
			fi
			rm -f "$out" $zpool/pool.tx $zpool/pool.txs
		done
	fi
	pair_end zc.tx ng dxg
fi

if wanted zc.guard; then
	pair_begin dxq nq nr 7
	if [ $ok = 1 ]; then
		client_vs_guard zc.guard dup nq nr 7 7005 262144 120
		[ "$(grep -c ' ok ' "$out")" = 8 ] || ok=0
		rm -f "$out"
	fi
	pair_end zc.guard nq dxq
fi

if wanted zc.xuser; then
	# uid 2000 may open the device (in its group, as the udev rule
	# kernel/udev/60-daxnet.rules would arrange) but has no capability.
	chgrp 2000 /dev/daxnet
	asuser="setpriv --reuid=2000 --regid=2000 --groups=2000"
	pair_begin dxs ns nt 8
	if [ $ok = 1 ]; then
		perm=$($asuser "$bin/zc_guard" zcperm 2>&1)
		say "zc.xuser uid 2000: $perm"
		case "$perm" in *FAIL* | "") ok=0 ;; esac
		out=/tmp/xuser.$$
		rm -f /tmp/xuser.stop
		ip netns exec nt timeout 120 "$bin/zc_guard" hold 7006 /tmp/xuser.stop >"$out" 2>&1 &
		hpid=$!
		sleep 0.5
		cl=$(ip netns exec ns timeout 60 "$zs" client 10.77.8.2 7006 262144 4096 2>&1)
		say "zc.xuser root's own stream: $cl"
		ip netns exec nt timeout 60 $asuser "$bin/zc_guard" sink 7007 >"$out.sink" 2>&1 &
		kpid=$!
		sleep 0.3
		ip netns exec ns timeout 60 $asuser "$bin/zc_guard" send 10.77.8.2 7007 4194304 >/dev/null 2>&1 || ok=0
		wait $kpid || ok=0
		touch /tmp/xuser.stop
		wait $hpid || ok=0
		say "zc.xuser uid 2000's stream: $(cat "$out.sink")"
		while read -r line; do say "zc.xuser root's port: $line"; done <"$out"
		grep -q 'bytes=4194304 odd=0' "$out.sink" || ok=0
		grep -q 'own-stream ok' "$out" || ok=0
		grep -q 'foreign-bytes ok' "$out" || ok=0
		fr=$(counter nt dxsp rx_foreign)
		say "zc.xuser dxsp rx_foreign=$fr rx_pool_bytes=$(counter nt dxsp rx_pool_bytes) rx_page_bytes=$(counter nt dxsp rx_page_bytes)"
		[ "$fr" -gt 0 ] || ok=0
		rm -f "$out" "$out.sink" /tmp/xuser.stop
	fi
	pair_end zc.xuser ns dxs
fi

# zc.persist (and zc.devdax): daxnet-kv and daxnet-wal on the zero-copy path. Each write is
# acknowledged only after the service flushed it in place - in the pool
# buffer the vnic wrote it to - and committed its WAL record; kill -9 and a
# restart must give every acknowledged write back. (TCG emulates no CPU
# cache, so this proves the data path and recovery, not the flushes
# themselves: the pmem shadow-image tests cover those.)
svcbin=$DXBUILD/bin
# wait_up kv|wal PORT: until the service in netns nn answers (up to 60 s;
# a fixed sleep lost the first SET on a loaded machine).
wait_up() {
	for t in $(seq 120); do
		if [ "$1" = kv ]; then
			ip netns exec nm timeout 5 redis-cli -h 10.77.6.2 -p "$2" PING 2>/dev/null | grep -q PONG && return 0
		else
			ip netns exec nm timeout 5 curl -s -o /dev/null http://10.77.6.2:"$2"/stats && return 0
		fi
		sleep 0.5
	done
	say "service on port $2 did not come up"
}
# persist_services STEP KVPOOL WALPOOL: the kv and wal rounds below with
# those pools (files in shared memory, or a /dev/daxX.Y device); sets ok=0
# on any failure.
persist_services() {
	make_pair dxm nm nn 6 || { ok=0; say "pair setup failed"; }
	# A device-DAX pool is formatted by daxnet-pool (the services create
	# only pool files), 64 MiB of it like the files (a whole-device pool
	# takes minutes to open under TCG); --require-dax: device DAX is DAX.
	kvextra= walextra=
	case "$2" in /dev/dax*)
		"$svcbin/daxnet-pool" create --force --size 64M "$2" >/dev/null || { ok=0; say "daxnet-pool create $2 failed"; }
		kvextra=--require-dax ;;
	esac
	case "$3" in /dev/dax*)
		walextra=--require-dax ;;
	esac
	kvargs="--pool $2 --pool-size 64M --bind 10.77.6.2 --port 6400 --transport kernel --zerocopy $kvextra"
	ip netns exec nn "$svcbin/daxnet-kv" $kvargs >/tmp/kv1.log 2>&1 &
	kvpid=$!
	wait_up kv 6400
	# 40 SETs of 6006-byte values (> one MSS: mostly whole pool pages).
	i=0
	: >/tmp/kv.cmds
	pad=$(head -c 6000 /dev/zero | tr '\0' x)
	while [ $i -lt 40 ]; do
		printf 'SET key%d %06d%s\n' $i $i "$pad" >>/tmp/kv.cmds
		i=$((i + 1))
	done
	acks=$(ip netns exec nm timeout 60 redis-cli -h 10.77.6.2 -p 6400 </tmp/kv.cmds | grep -c '^OK$')
	[ "$acks" = 40 ] || tail -n 20 /tmp/kv1.log
	info=$(ip netns exec nm timeout 20 redis-cli -h 10.77.6.2 -p 6400 INFO | tr -d '\r')
	say "$1 kv: $acks/40 acknowledged; $(echo "$info" | grep -E '^daxnet_(zerocopy|rx_zc_bytes|cpu_copied_bytes|rx_bytes|pool_buffers_free|rx_ring_full|spare_empty):' | tr '\n' ' ')"
	[ "$acks" = 40 ] || ok=0
	echo "$info" | grep -q '^daxnet_zerocopy:1$' || ok=0
	zcb=$(echo "$info" | sed -n 's/^daxnet_rx_zc_bytes://p')
	[ "${zcb:-0}" -gt 200000 ] || ok=0
	kill -9 $kvpid
	wait $kvpid 2>/dev/null
	ip netns exec nn "$svcbin/daxnet-kv" $kvargs >/tmp/kv2.log 2>&1 &
	kvpid=$!
	wait_up kv 6400
	good=0
	i=0
	while [ $i -lt 40 ]; do
		exp=$(sed -n "$((i + 1))p" /tmp/kv.cmds | cut -d' ' -f3)
		if ! got=$(ip netns exec nm timeout 20 redis-cli -h 10.77.6.2 -p 6400 GET key$i); then
			say "$1 kv: GET key$i failed"
			break
		fi
		if [ "$got" = "$exp" ]; then
			good=$((good + 1))
		else
			say "$1 kv: key$i: ${#got} bytes '$(echo "$got" | cut -c1-16)...', want ${#exp} '$(echo "$exp" | cut -c1-16)...'"
		fi
		i=$((i + 1))
	done
	say "$1 kv: after kill -9 and restart, $good/40 values intact"
	[ "$good" = 40 ] || ok=0
	kill $kvpid
	wait $kvpid 2>/dev/null

	case "$3" in /dev/dax*)
		"$svcbin/daxnet-pool" create --force --size 64M "$3" >/dev/null || { ok=0; say "daxnet-pool create $3 failed"; } ;;
	esac
	walargs="--pool $3 --pool-size 64M --bind 10.77.6.2 --port 8400 --transport kernel --zerocopy $walextra"
	ip netns exec nn "$svcbin/daxnet-wal" $walargs >/tmp/wal1.log 2>&1 &
	walpid=$!
	wait_up wal 8400
	head -c 12288 /dev/urandom >/tmp/wal.body
	created=0
	i=0
	while [ $i -lt 20 ]; do
		code=$(ip netns exec nm timeout 10 curl -s -o /dev/null -w '%{http_code}' \
			--data-binary @/tmp/wal.body http://10.77.6.2:8400/log/zc) || break
		[ "$code" = 201 ] && created=$((created + 1))
		i=$((i + 1))
	done
	stats=$(ip netns exec nm timeout 10 curl -s http://10.77.6.2:8400/stats)
	say "$1 wal: $created/20 created; $(echo "$stats" | tr ',' '\n' | grep -E '"(zerocopy|rx_zc_bytes|cpu_copied_bytes)"' | tr '\n' ' ')"
	[ "$created" = 20 ] || ok=0
	case "$stats" in *'"zerocopy":1'*) ;; *) ok=0 ;; esac
	kill -9 $walpid
	wait $walpid 2>/dev/null
	ip netns exec nn "$svcbin/daxnet-wal" $walargs >/tmp/wal2.log 2>&1 &
	walpid=$!
	wait_up wal 8400
	ip netns exec nm timeout 20 curl -s "http://10.77.6.2:8400/log/zc?from=0&limit=20&format=raw" >/tmp/wal.back
	want=$(for i in $(seq 20); do cat /tmp/wal.body; done | md5sum | cut -d' ' -f1)
	got=$(md5sum </tmp/wal.back | cut -d' ' -f1)
	say "$1 wal: after kill -9 and restart, $(wc -c </tmp/wal.back) bytes read back, md5 $([ "$want" = "$got" ] && echo matches || echo DIFFERS)"
	[ "$want" = "$got" ] || ok=0
	kill $walpid
	wait $walpid 2>/dev/null
	[ $ok = 1 ] || { tail -n 5 /tmp/kv1.log /tmp/kv2.log /tmp/wal1.log /tmp/wal2.log; }
	ip -n nm link del dxm 2>/dev/null
	# zc.devdax and zc.persist both run this: free the names.
	ip netns del nm 2>/dev/null
	ip netns del nn 2>/dev/null
}

if wanted zc.devdax; then
	ok=1
	dd=
	modprobe device_dax 2>/dev/null
	for ns in $(ndctl list -N -i 2>/dev/null | sed -n 's/.*"dev":"\(namespace[0-9]*\.0\)".*/\1/p'); do
		[ "$ns" = namespace0.0 ] && continue
		# 4 KiB alignment: with 2 MiB (the default) the device maps
		# compound pages whose one reference count covers 512 pages,
		# so a buffer looks busy while any of them is (docs/kernel.md,
		# zero-copy Limits).
		ndctl create-namespace -f -e "$ns" --mode=devdax --align=4K >/dev/null 2>&1 ||
			ndctl create-namespace -f -e "$ns" --mode=devdax >/dev/null 2>&1 || continue
		dd=$(ls -d /dev/dax"${ns#namespace}" 2>/dev/null)
		[ -n "$dd" ] && break
	done
	if [ -z "$dd" ]; then
		# Both runners (host-kernel-tests.sh, run-zc.sh) boot with a
		# second NVDIMM: without a device-DAX namespace the setup is
		# broken, and a silent skip would let CI pass without ever
		# running zero copy on device DAX. Only an explicit
		# DXZC_NO_DEVDAX=reason (a hand-made guest) skips, and says so.
		if [ -n "${DXZC_NO_DEVDAX:-}" ]; then
			say "SKIP zc.devdax: $DXZC_NO_DEVDAX (DXZC_NO_DEVDAX set)"
		else
			fail zc.devdax "no second NVDIMM / device-DAX namespace (ndctl: $(command -v ndctl || echo missing)); the runners add one, so the setup is broken"
		fi
	else
		say "zc.devdax: $dd, size $(cat /sys/bus/dax/devices/$(basename "$dd")/size), align $(cat /sys/bus/dax/devices/$(basename "$dd")/align 2>/dev/null)"
		make_pair dxw nw nx 10 || { ok=0; say "pair setup failed"; }
		if [ $ok = 1 ]; then
			out=/tmp/devdax.$$
			ip netns exec nx timeout 120 "$zr" server 7009 "$dd" --count 2 >"$out" 2>&1 &
			spid=$!
			sleep 0.5
			for b in 65536 4194304; do
				cl=$(ip netns exec nw timeout 60 "$zs" client 10.77.10.2 7009 $b 4096 2>&1)
				say "zc.devdax rx: $cl"
				sleep 0.3
			done
			wait $spid || ok=0
			sv=$(grep 'server bytes' "$out" | tail -n 1)
			say "zc.devdax rx: $sv"
			case "$sv" in *" bad=0 "*mode=zc*) ;; *) ok=0; cat "$out" ;; esac
			[ "${cl##*sum=}" = "$(echo "$sv" | sed -n 's/.* sum=\([0-9a-f]*\).*/\1/p')" ] || ok=0
			[ "$(field rx_zc_bytes "$sv")" -gt 0 ] || ok=0
			ip netns exec nx timeout 60 "$zs" server 7010 >"$out" 2>&1 &
			spid=$!
			sleep 0.5
			cl=$(ip netns exec nw timeout 60 "$zr" client 10.77.10.2 7010 "$dd" 4194304 4096 2>&1)
			wait $spid
			sv=$(grep 'server bytes' "$out")
			say "zc.devdax tx: $cl"
			say "zc.devdax tx: $sv"
			case "$cl" in *mode=zc*) ;; *) ok=0 ;; esac
			[ "$(field tx_zc_bytes "$cl")" = 4194304 ] || ok=0
			[ "$(echo "$cl" | sed -n 's/.* sum=\([0-9a-f]*\).*/\1/p')" = "${sv##*sum=}" ] || ok=0
			rm -f "$out"
		fi
		ip -n nw link del dxw 2>/dev/null
		# The services on the device: daxnet-pool formats it, daxnet-kv
		# and daxnet-wal run --zerocopy --require-dax on it and give every
		# acknowledged write back after kill -9.
		if [ -x "$svcbin/daxnet-kv" ] && [ -x "$svcbin/daxnet-wal" ] && [ -x "$svcbin/daxnet-pool" ]; then
			persist_services zc.devdax "$dd" "$dd"
			devdax_persisted=1
			"$svcbin/daxnet-pool" info "$dd" | while read -r line; do say "zc.devdax pool: $line"; done
		elif [ "$suite" = 1 ]; then
			# The kernel suite runs the services' rounds only here.
			ok=0
			say "zc.devdax: services or daxnet-pool not built in $svcbin (the kernel suite needs them)"
		else
			say "zc.devdax: services or daxnet-pool not built in $svcbin; services part skipped"
		fi
		[ $ok = 1 ] && pass zc.devdax || fail zc.devdax "see log"
	fi
fi

if wanted zc.race; then
	pair_begin dxy ny nz 11
	if [ $ok = 1 ]; then
		out=/tmp/race.$$
		ip netns exec nz timeout 60 "$bin/zc_guard" race 7012 4 >"$out" 2>&1 &
		spid=$!
		sleep 0.5
		ip netns exec ny timeout 30 "$zs" client 10.77.11.2 7012 67108864 4096 >/dev/null 2>&1
		wait $spid || ok=0
		say "zc.race: $(cat "$out")"
		grep -q 'race syncs=' "$out" || ok=0
		rm -f "$out"
	fi
	pair_end zc.race ny dxy
fi

if wanted zc.empty; then
	guard_alone zc.empty nem
fi

if wanted zc.rxlimit; then
	pair_begin dxr nrl1 nrl2 17
	if [ $ok = 1 ]; then
		client_vs_guard zc.rxlimit rxlimit nrl1 nrl2 17 7019 262144 300
		rm -f "$out"
	fi
	pair_end zc.rxlimit nrl1 dxr
fi

if wanted zc.ctl; then
	pair_begin dxc nc1 nc2 18
	[ -d /sys/kernel/debug/daxnet ] || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	if [ $ok = 1 ]; then
		out=/tmp/ctl.$$
		rm -f /tmp/ctl.stop
		# keep: at the stream's end the connection stays attached (a TX
		# EOF slot answers the client), for its line in daxnet/ports.
		ip netns exec nc2 timeout 120 "$bin/zc_guard" hold 7020 /tmp/ctl.stop keep >"$out" 2>&1 &
		hpid=$!
		sleep 0.5
		cl=$(ip netns exec nc1 timeout 60 "$zs" client 10.77.18.2 7020 262144 4096 2>&1)
		say "zc.ctl: $cl"
		# ethtool -S: the receiving end's counters, the same as sysfs.
		es=$(ip netns exec nc2 ethtool -S dxcp 2>&1)
		say "zc.ctl: ethtool -S dxcp: $(echo "$es" | tr -s ' \n' ' ')"
		pb=$(echo "$es" | sed -n 's/^ *rx_pool_bytes: //p')
		[ -n "$pb" ] && [ "$pb" -gt 0 ] && [ "$pb" = "$(counter nc2 dxcp rx_pool_bytes)" ] || ok=0
		for f in rx_segs rx_pool_bytes rx_pool_chunks rx_page_bytes rx_pool_miss rx_foreign rx_csum_bad rx_linear tx_tso; do
			echo "$es" | grep -q "^ *$f: [0-9]" || { ok=0; say "zc.ctl: no $f"; }
		done
		# The standard counters are ip -s link's, not repeated by ethtool -S.
		for f in rx_packets rx_bytes rx_drops tx_packets tx_bytes; do
			echo "$es" | grep -q "^ *$f:" && { ok=0; say "zc.ctl: ethtool -S repeats $f"; }
		done
		ip netns exec nc2 ethtool -i dxcp | grep -q '^driver: daxnet' || ok=0
		# debugfs daxnet/ports: root's zero-copy port with the stream's bytes.
		gp=$(pidof zc_guard)
		# One snapshot, taken when the port is not busy (zc_guard syncs
		# every 20 ms; a read during a sync shows port=N busy=1).
		snap=
		for i in $(seq 50); do
			snap=$(cat /sys/kernel/debug/daxnet/ports)
			echo "$snap" | grep -q "^port=[0-9]* registered=1 pid=$gp uid=0 mode=zerocopy mem=shmem buf_size=4096 buf_count=64 .* rx_bytes=262144 " &&
				break
			sleep 0.2
		done
		echo "$snap" | while read -r line; do say "zc.ctl: ports: $line"; done
		echo "$snap" | grep -q "^port=[0-9]* registered=1 pid=$gp uid=0 mode=zerocopy mem=shmem buf_size=4096 buf_count=64 .* rx_bytes=262144 " ||
			{ ok=0; say "zc.ctl: no port line for pid $gp"; }
		echo "$snap" | grep -q '^pair=0 port=[0-9]* conns=[0-9]* rx_slots=[0-9]* rx_head=[0-9]* rx_tail=' ||
			{ ok=0; say "zc.ctl: no pair line"; }
		# The owner's pid is shown in the reader's pid namespace: 0 in a
		# new one, where it is not visible (a stored number showed it).
		pn=$(echo "$snap" | sed -n "s/^port=\([0-9]*\) registered=1 pid=$gp .*/\1/p" | head -n 1)
		for i in $(seq 20); do
			pl=$(unshare --pid --fork cat /sys/kernel/debug/daxnet/ports | grep "^port=$pn registered=1 ")
			[ -n "$pl" ] && break
			sleep 0.2
		done
		say "zc.ctl: in a new pid namespace: $(echo "$pl" | cut -c1-80)"
		case "$pl" in *" pid=0 uid=0 "*) ;; *) ok=0; say "zc.ctl: owner pid not 0 in a new pid namespace" ;; esac
		# The held connection: addresses, state, bytes, rx_limit.
		echo "$snap" | grep -q '^conn=[0-9]* port=[0-9]* index=[0-9]* pair=0 local=10\.77\.18\.2:7020 remote=10\.77\.18\.1:[0-9]* state=[A-Z_0-9]* err=0 rx_bytes=262144 tx_bytes=[0-9]* rx_zc_bytes=[0-9]* tx_zc_bytes=[0-9]* segs_in=[1-9][0-9]* segs_out=[1-9][0-9]* tx_queued=0 rx_limit=0$' ||
			{ ok=0; say "zc.ctl: no connection line"; }
		echo "$snap" | grep -q '0x\|ffff' && { ok=0; say "zc.ctl: an address in ports"; }
		# Root only: the file itself is 0400 (debugfs's own 0700 directory
		# would hide a looser file mode from the uid-2000 read below).
		m=$(stat -c %a /sys/kernel/debug/daxnet/ports)
		[ "$m" = 400 ] || { ok=0; say "zc.ctl: daxnet/ports has mode $m"; }
		setpriv --reuid=2000 --regid=2000 --groups=2000 cat /sys/kernel/debug/daxnet/ports >/dev/null 2>&1 &&
			{ ok=0; say "zc.ctl: uid 2000 read daxnet/ports"; }
		# daxnetctl ports / links (--json): built with the guest targets.
		if [ -x "$svcbin/daxnetctl" ]; then
			# A read during one of zc_guard's syncs shows the port busy.
			for i in $(seq 20); do
				dp=$("$svcbin/daxnetctl" ports)
				echo "$dp" | grep -q "^  conn " && break
				sleep 0.1
			done
			echo "$dp" | while read -r line; do say "zc.ctl: daxnetctl ports: $line"; done
			echo "$dp" | grep -q "unexpected" && { ok=0; say "zc.ctl: daxnetctl ports could not read the format"; }
			for i in $(seq 20); do
				"$svcbin/daxnetctl" --json ports | grep -q '"busy"' || break
				sleep 0.1
			done
			"$svcbin/daxnetctl" --json ports | python3 -c '
import json, sys
gp = int(sys.argv[1])
ps = [p for p in json.load(sys.stdin)["ports"]["ports"] if p.get("pid") == gp]
assert ps and ps[0]["mode"] == "zerocopy" and ps[0]["rx_bytes"] == 262144, ps
assert ps[0]["pairs"][0]["rx_slots"] > 0, ps
cs = ps[0]["connections"]
assert len(cs) == 1 and cs[0]["local"] == "10.77.18.2:7020", cs
assert cs[0]["remote"].startswith("10.77.18.1:") and cs[0]["rx_bytes"] == 262144, cs
assert cs[0]["pair"] == 0 and cs[0]["rx_limit"] == 0 and cs[0]["segs_in"] > 0, cs
' "$gp" || { ok=0; say "zc.ctl: daxnetctl --json ports"; }
			echo "$dp" | grep -q "^  conn [0-9]*: 10\.77\.18\.2:7020 -> 10\.77\.18\.1:[0-9]* [A-Z_0-9]*, pair 0, rx 262144 bytes" ||
				{ ok=0; say "zc.ctl: daxnetctl ports shows no connection line"; }
			ip netns exec nc2 "$svcbin/daxnetctl" links | while read -r line; do say "zc.ctl: daxnetctl links: $line"; done
			ip netns exec nc2 "$svcbin/daxnetctl" --json links | python3 -c '
import json, sys
ls = json.load(sys.stdin)["links"]["links"]
assert [l["name"] for l in ls] == ["dxcp"], ls
assert ls[0]["counters"]["rx_pool_bytes"] == int(sys.argv[1]), ls
' "$pb" || { ok=0; say "zc.ctl: daxnetctl --json links"; }
			setpriv --reuid=2000 --regid=2000 --groups=2000 "$svcbin/daxnetctl" ports >/dev/null 2>&1 &&
				{ ok=0; say "zc.ctl: daxnetctl ports exited 0 for uid 2000"; }
		else
			ok=0
			say "zc.ctl: no daxnetctl in $svcbin (build the daxnetctl target)"
		fi
		touch /tmp/ctl.stop
		wait $hpid || ok=0
		grep -q 'own-stream ok' "$out" || ok=0
		rm -f "$out"
	fi
	pair_end zc.ctl nc1 dxc
fi

# In the kernel suite (CI) the services' rounds run once, on device DAX
# (zc.devdax above), not again on shared memory: the same zero-copy path,
# and it keeps the suite's time (each round is minutes under TCG). The
# standalone runner and an explicit zc.persist still run them on shm.
if wanted zc.persist && [ "$suite" = 1 ] && [ -z "$DXARGS" ] && [ "${devdax_persisted:-0}" = 1 ]; then
	say "zc.persist: the rounds ran on device DAX (zc.devdax); not repeated on shm"
elif wanted zc.persist && [ -x "$svcbin/daxnet-kv" ] && [ -x "$svcbin/daxnet-wal" ]; then
	ok=1
	persist_services zc.persist $zpool/kv.pool $zpool/wal.pool
	rm -f $zpool/kv.pool $zpool/wal.pool
	[ $ok = 1 ] && pass zc.persist || fail zc.persist "see log"
elif wanted zc.persist && [ -n "$DXARGS" ]; then
	fail zc.persist "daxnet-kv/daxnet-wal not built in $svcbin"
fi

# Not run by default: bench/guest/zc_bench.sh (rpc and wal workloads of
# daxnet-httpd over the pair: kernel zero-copy vs kernel copy vs uring vs
# epoll).
if [ -n "$DXARGS" ] && wanted zc.bench; then
	if DXBENCH_BIN=$svcbin DXBENCH_DAX=$zpool sh "$DXSRC/bench/guest/zc_bench.sh"; then
		pass zc.bench
	else
		fail zc.bench
	fi
fi

# Not run by default: the TX copy/zero-copy crossover (zc_tx_min).
if [ -n "$DXARGS" ] && wanted zc.txbench; then
	make_pair dxk nk nl 5
	for ws in 512 1024 2048 4096; do
		for min in 0 1000000; do
			echo $min >/sys/module/daxnet/parameters/zc_tx_min
			ip netns exec nl timeout 120 "$zs" server 7004 >/dev/null 2>&1 &
			spid=$!
			sleep 0.5
			cl=$(ip netns exec nk timeout 120 "$zr" client 10.77.5.2 7004 $zpool/pool.tb 8388608 $ws 2>&1)
			wait $spid
			say "zc.txbench ws=$ws zc_tx_min=$min cpu_us=$(field cpu_us "$cl") tx_zc_bytes=$(field tx_zc_bytes "$cl") tx_copied=$(field tx_copied "$cl") batches=$(field tx_zc_batches "$cl")"
			rm -f $zpool/pool.tb
		done
	done
	echo 2048 >/sys/module/daxnet/parameters/zc_tx_min
	ip -n nk link del dxk 2>/dev/null
	pass zc.txbench
fi

for ns in $(ip netns list | cut -d' ' -f1); do ip netns del "$ns"; done
rm -rf $zpool
umount /run 2>/dev/null
if [ "$suite" = 1 ]; then
	say "done"
	exit $failed
fi
sleep 1
if rmmod daxnet; then pass rmmod; else fail rmmod; fi
check_dmesg
say "done"
exit $failed
