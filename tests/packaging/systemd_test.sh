#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# The daxnet .deb under a real systemd: a Debian 12 container (debootstrap,
# booted by systemd-nspawn with systemd as its PID 1, a private network and
# a throw-away overlay on the root), `apt-get install ./daxnet_*.deb`
# resolving the package's dependencies from a local archive (the
# container has no network; the root lacks those dependencies until apt
# installs them), then
#   systemctl start daxnet-kv    -> active (Type=notify: READY=1 after listen)
#   redis-cli SET/GET, curl /metrics on the unit's ports, as user daxnet,
#   inside the unit's sandbox (ProtectSystem=strict, SystemCallFilter)
#   systemctl stop / start       -> clean exit 0, the value is still there
#   systemctl start daxnet-wal   -> curl POST/GET of a record
#
#   systemd_test.sh BUILD_DIR
#
# The Debian root is built once per package list and cached under
# /var/cache/daxnet-tests (DAXNET_NSPAWN_CACHE), read-only to every run:
# each run boots it with --volatile=overlay, so nothing it does persists.
# A run stopped by SIGINT/SIGTERM powers its container off; a container
# left by a run killed harder (SIGKILL) is stopped by the next run.
set -euo pipefail

build=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
cache=${DAXNET_NSPAWN_CACHE:-/var/cache/daxnet-tests}
mirror=${DAXNET_DEBIAN_MIRROR:-http://deb.debian.org/debian}
tmp=$(mktemp -d /tmp/daxnet-systemd.XXXXXX)
nspawn_pid=
pid1=

say() { printf '%s\n' "$*"; }
fail() {
	say "FAIL: $*"
	if [ -n "$pid1" ]; then
		in_ct journalctl --no-pager -n 60 -u daxnet-kv -u daxnet-wal 2>/dev/null || true
	fi
	exit 1
}
cleanup() {
	if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		[ -n "$pid1" ] && kill -RTMIN+4 "$pid1" 2>/dev/null # poweroff
		for _ in $(seq 1 100); do
			kill -0 "$nspawn_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$nspawn_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Containers of earlier runs that died without cleaning up: the machine
# name carries the test's PID; a container whose test process is gone is
# an orphan (one whose test still runs, e.g. a second copy of the suite,
# is left alone).
for p in $(pgrep -f -- 'systemd-nspawn .*--machine=daxnet-test-[0-9]+' || true); do
	owner=$(tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | sed -n 's/^--machine=daxnet-test-//p')
	[ -n "$owner" ] || continue
	if ! kill -0 "$owner" 2>/dev/null; then
		say "stopping the orphaned container daxnet-test-$owner (nspawn pid $p)"
		kill -TERM "$p" 2>/dev/null || true
		for _ in $(seq 1 50); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null || true
	fi
done

# A sanitizer build's package needs the sanitizer runtimes, which the
# container does not hold: this test is for the release build.
if grep -Eq '^DAXNET_SANITIZE:[A-Z]*=.*(address|thread|undefined|memory)' "$build/CMakeCache.txt" 2>/dev/null; then
	say "SKIP: sanitizer build ($build)"
	exit 77
fi

for t in systemd-nspawn debootstrap nsenter cpack dpkg-deb; do
	command -v "$t" >/dev/null || fail "$t not installed (scripts/deps.sh installs it)"
done

# 1. The packages, from this build tree.
say "== cpack"
cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/pkgs" >"$tmp/cpack.log" 2>&1 ||
	{ tail -20 "$tmp/cpack.log"; fail "cpack"; }
deb=$(ls "$tmp"/pkgs/daxnet_*.deb)
[ -f "$deb" ] || fail "no daxnet_*.deb from cpack"

# 2. A Debian root holding systemd and the test's tools but not what the
# package depends on: those are downloaded once into a local archive
# inside the root (/var/local/debs, the root's only apt source), from
# which apt resolves them when the package is installed. The container
# has a private network: nothing is fetched inside it.
deps=$(dpkg-deb -f "$deb" Depends | tr ',|' '\n\n' | sed 's/(.*)//; s/[[:space:]]//g' | grep -v '^$' | sort -u)
base=$(printf '%s\n' systemd systemd-sysv dbus redis-tools curl | sort -u | tr '\n' ',' | sed 's/,$//')
key=$(printf 'apt-v1 %s %s' "$base" "$deps" | sha256sum | cut -c1-12)
root="$cache/bookworm-$key"
mkdir -p "$cache"
(
	flock 9
	if [ ! -e "$root/.complete" ]; then
		say "== debootstrap (once per package list; cached in $root): $base"
		rm -rf "$root.new"
		debootstrap --variant=minbase --include="$base" bookworm "$root.new" "$mirror" \
			>"$tmp/debootstrap.log" 2>&1 || { tail -20 "$tmp/debootstrap.log"; exit 1; }
		say "== local archive of the dependencies: $(tr '\n' ' ' <<<"$deps")"
		cp /etc/resolv.conf "$root.new/etc/resolv.conf"
		# shellcheck disable=SC2086 # one word per package
		chroot "$root.new" apt-get -q -o APT::Sandbox::User=root install -y --download-only $deps \
			>"$tmp/download.log" 2>&1 || { tail -20 "$tmp/download.log"; exit 1; }
		mkdir -p "$root.new/var/local/debs"
		mv "$root.new"/var/cache/apt/archives/*.deb "$root.new/var/local/debs/"
		(cd "$root.new/var/local/debs" && dpkg-scanpackages -m . /dev/null >Packages 2>/dev/null) ||
			exit 1
		echo 'deb [trusted=yes] file:/var/local/debs ./' >"$root.new/etc/apt/sources.list"
		rm -rf "$root.new"/var/lib/apt/lists/*
		chroot "$root.new" apt-get -q -o APT::Sandbox::User=root update >>"$tmp/download.log" 2>&1 ||
			{ tail -20 "$tmp/download.log"; exit 1; }
		: >"$root.new/etc/resolv.conf"
		touch "$root.new/.complete"
		rm -rf "$root"
		mv "$root.new" "$root"
	fi
) 9>"$cache/.lock" || fail "debootstrap"

# 3. Boot it: systemd as PID 1 of the container.
say "== boot"
name="daxnet-test-$$"
systemd-nspawn -q -D "$root" --volatile=overlay --boot --register=no --keep-unit \
	--private-network --machine="$name" --bind-ro="$tmp/pkgs:/pkgs" --console=pipe \
	</dev/null >"$tmp/nspawn.log" 2>&1 &
nspawn_pid=$!
# PID 1 of the container is the process whose comm is systemd among
# nspawn's descendants; then wait (bounded) for it to finish booting.
in_ct() { nsenter -t "$pid1" -m -u -i -n -p -- "$@"; }
state=
for _ in $(seq 1 1200); do
	kill -0 "$nspawn_pid" 2>/dev/null || { cat "$tmp/nspawn.log"; fail "systemd-nspawn exited"; }
	if [ -z "$pid1" ]; then
		for c in $(pgrep -P "$nspawn_pid") $(pgrep -P "$(pgrep -P "$nspawn_pid" | head -1)" 2>/dev/null); do
			[ "$(cat "/proc/$c/comm" 2>/dev/null)" = systemd ] && pid1=$c
		done
	fi
	if [ -n "$pid1" ]; then
		state=$(in_ct systemctl is-system-running 2>/dev/null || true)
		case "$state" in running | degraded) break ;; esac
	fi
	sleep 0.25
done
case "$state" in
running | degraded) say "container: systemd $state" ;;
*) fail "container systemd did not come up: '$state'" ;;
esac
[ "$(in_ct cat /proc/1/comm)" = systemd ] || fail "PID 1 of the container is not systemd"

# 4. Install, as a user would: apt resolves and installs the dependencies.
# shellcheck disable=SC2016 # ${...} is dpkg-query's format, not the shell's
installed() { [ "$(in_ct dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }
# The dependencies without alternatives must be installed by apt (one of
# "a | b" may be satisfied either way).
single=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | grep -v '|' | sed 's/(.*)//; s/[[:space:]]//g' | grep -v '^$')
missing=
for d in $single; do
	installed "$d" || missing="$missing $d"
done
[ -n "$missing" ] || fail "the root already holds every dependency: apt would resolve nothing"
say "== apt-get install ./$(basename "$deb") (dependencies to resolve:$missing)"
in_ct env DEBIAN_FRONTEND=noninteractive apt-get install -y "/pkgs/$(basename "$deb")" >"$tmp/apt.log" 2>&1 ||
	{ cat "$tmp/apt.log"; fail "apt-get install"; }
for d in $missing; do
	installed "$d" || fail "apt did not install the dependency $d"
done
in_ct getent passwd daxnet >/dev/null || fail "postinst did not create user daxnet"
in_ct systemctl cat daxnet-kv.service >/dev/null || fail "daxnet-kv.service not known to systemd"

active() { in_ct systemctl is-active "$1" 2>/dev/null || true; }
main_pid() { in_ct systemctl show -P MainPID "$1"; }

# 5. daxnet-kv: start (returns once READY=1), serve, stop cleanly, persist.
say "== daxnet-kv"
in_ct systemctl start daxnet-kv || fail "systemctl start daxnet-kv"
[ "$(active daxnet-kv)" = active ] || fail "daxnet-kv is $(active daxnet-kv) after start"
pid=$(main_pid daxnet-kv)
user=$(in_ct ps -o user= -p "$pid" 2>/dev/null || in_ct stat -c %U "/proc/$pid")
[ "$user" = daxnet ] || fail "daxnet-kv runs as '$user', not daxnet"
[ "$(in_ct redis-cli -p 6380 PING)" = PONG ] || fail "PING"
[ "$(in_ct redis-cli -p 6380 SET unit-key durable-value)" = OK ] || fail "SET"
[ "$(in_ct redis-cli -p 6380 GET unit-key)" = durable-value ] || fail "GET"
metrics=$(in_ct curl -sf http://127.0.0.1:6381/metrics) || fail "/metrics on the HTTP port"
grep -q "^daxnet_requests" <<<"$metrics" || fail "/metrics lacks daxnet_requests"
in_ct test -f /var/lib/daxnet/kv.pool || fail "pool not in /var/lib/daxnet"
# The sandbox holds: the service's view of /usr is read-only.
ns=$(in_ct nsenter -t "$pid" -m -- sh -c 'touch /usr/x 2>&1 || echo ro')
case "$ns" in *ro*) ;; *) fail "ProtectSystem=strict: the service could write /usr" ;; esac
# SystemCallFilter=@system-service: the filter is on, denies what a
# storage service never needs, and io_uring (in @system-service's @aio)
# still works under it.
filter=$(in_ct systemctl show -P SystemCallFilter daxnet-kv)
case " $filter " in *" io_uring_setup "*) ;; *) fail "SystemCallFilter lacks io_uring_setup: $filter" ;; esac
case " $filter " in *" kexec_load "* | *" reboot "* | *" init_module "*) fail "SystemCallFilter allows privileged calls" ;; esac
[ -n "$filter" ] || fail "no SystemCallFilter on daxnet-kv"
transport=$(grep -o 'transport="[a-z_]*"' <<<"$metrics" | head -1)
say "daxnet-kv transport under the unit's sandbox: ${transport:-?}"
in_ct systemctl stop daxnet-kv || fail "systemctl stop daxnet-kv"
res=$(in_ct systemctl show -P Result daxnet-kv)
code=$(in_ct systemctl show -P ExecMainStatus daxnet-kv)
[ "$res" = success ] && [ "$code" = 0 ] || fail "daxnet-kv stop: Result=$res status=$code"
in_ct systemctl start daxnet-kv || fail "systemctl start daxnet-kv (again)"
[ "$(in_ct redis-cli -p 6380 GET unit-key)" = durable-value ] || fail "value lost across stop/start"
in_ct systemctl stop daxnet-kv
say "daxnet-kv: notify start, serve as daxnet, seccomp, clean stop, restart keeps data: ok"

# 6. daxnet-wal.
say "== daxnet-wal"
in_ct systemctl start daxnet-wal || fail "systemctl start daxnet-wal"
[ "$(active daxnet-wal)" = active ] || fail "daxnet-wal is $(active daxnet-wal) after start"
port=$(in_ct sh -c "sed -n 's/^port *= *//p' /etc/daxnet/wal.conf | head -1")
[ -n "$port" ] || fail "no port in /etc/daxnet/wal.conf"
in_ct curl -sf -X POST --data-binary 'hello from systemd' "http://127.0.0.1:$port/log/unit" >/dev/null ||
	fail "POST /log/unit"
got=$(in_ct curl -sf "http://127.0.0.1:$port/log/unit?from=0&limit=1&format=raw")
[ "$got" = 'hello from systemd' ] || fail "GET /log/unit returned '$got'"
in_ct systemctl stop daxnet-wal || fail "systemctl stop daxnet-wal"
res=$(in_ct systemctl show -P Result daxnet-wal)
[ "$res" = success ] || fail "daxnet-wal stop: Result=$res"
say "daxnet-wal: notify start, POST/GET, clean stop: ok"
say "PASS"
