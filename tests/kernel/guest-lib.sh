# SPDX-License-Identifier: BSD-2-Clause
# shellcheck shell=bash
#
# The boot logic shared by the daxnet guest runners (sourced, bash):
# Debian's linux-image-amd64 under QEMU/TCG with the busybox initramfs of
# mkinitramfs.sh + guest-init, the host root read-only over 9p, an emulated
# NVDIMM, and pvpanic + oops=panic so that a guest kernel crash ends QEMU
# with a failure status. Used by
#   tests/kernel/host-kernel-tests.sh           (CTest `kernel`)
#   tests/kernel/zc/run-zc.sh                   (zero-copy tests)
#   tests/reliability/guest/host-reliability.sh (CTest `reliability: guest ...`)
#   bench/guest/host-bench.sh                   (the guest benchmarks)
# The scripts these boot run inside the guest and source guest-common.sh.
#
#   guest_init TAG                  log prefix "[TAG   Ns]" (N: seconds since)
#   guest_say MSG... / guest_skip MSG...   log a line / log "SKIP: MSG", exit 77
#   guest_kver                      prints the KVER of linux-image-amd64 ("" if none)
#   guest_require [headers] [busybox]
#                                   sets GUEST_KVER; exits 77 (guest_skip) when
#                                   the kernel image, the headers (if asked),
#                                   QEMU or busybox-static (if asked) is missing
#   guest_build_initramfs WORKDIR   sets GUEST_INITRD, cached in WORKDIR under a
#                                   key of KVER, mkinitramfs.sh and guest-init
#   guest_prepare_nvdimm IMG [SIZE] a fresh, empty NVDIMM image (default 512M)
#                                   in GUEST_NVDIMM(_SIZE); the guest script
#                                   formats it. Every guest_boot until the next
#                                   call reuses the same image (its data persists)
#   guest_boot --run SCRIPT --log LOG [options] [-- EXTRA QEMU ARGS...]
#                                   one boot; returns QEMU's exit status (timeout's:
#                                   124 timed out, 137 killed)
#       --run SCRIPT    dxrun=: the script guest-init runs in the guest (host path)
#       --src DIR --build DIR --args A,B   dxsrc= dxbuild= dxargs= (DXSRC, ...)
#       --timeout S     timeout(1) -k 10 S around QEMU (default 600)
#       --pidfile F     QEMU writes its pid to F (guest_kill F: a power cut)
#       --show REGEX    serial lines to echo while booting ('' = none; default:
#                       daxnet-guest / DAXNET- / guest-init / kernel messages)
#       --nvdimm IMG --nvdimm-size S   (default: guest_prepare_nvdimm's)
#       --devdax IMG    a second NVDIMM, fresh and as large as the first (the
#                       firmware may list either first), for the guest to
#                       make a device-DAX namespace of (zc.devdax); IMG is a
#                       sparse file
#       --smp N         vCPUs (default 2)
#       --icount SHIFT  deterministic virtual time: -icount shift=SHIFT,align=off,
#                       sleep=off (one instruction = 2^SHIFT ns), single-threaded
#                       TCG; boots with --smp 1 only (QEMU 7.2 hangs bringing up
#                       a second vCPU under icount)
#       --cmdline ARGS  extra kernel command line (e.g. guest_debug_cmdline)
#     LOG is the serial output without \r, complete when guest_boot returns;
#     LOG.raw is written as the output arrives (poll it for markers from a
#     watcher while guest_boot runs in the background) and removed at the end.
#   guest_debug_cmdline             prints the kernel arguments of a debug boot:
#                                   slub_debug=FZPU on the kmalloc caches (red
#                                   zones, poisoning, consistency checks, owner
#                                   tracking), KFENCE
#                                   sampling when the kernel has CONFIG_KFENCE
#                                   (Debian's 6.1 has not), a 60 s hung-task
#                                   timeout; guest_dmesg_bad (in the guest) fails
#                                   on what they report
#   guest_kill PIDFILE              kill -9 the QEMU of a guest_boot --pidfile
#   guest_results LOG QEMU_STATUS [TIMEOUT_S]
#                                   says "qemu exit status ..; N passed, M failed;
#                                   DAXNET-GUEST-EXIT .."; returns 0 when QEMU
#                                   exited 0, the guest printed
#                                   "DAXNET-GUEST-EXIT 0" and no DAXNET-FAIL
#                                   (sets GUEST_PASSES, GUEST_FAILS); else says why

GUEST_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GUEST_TAG=guest
GUEST_T0=$(date +%s)
GUEST_KVER=
GUEST_INITRD=
GUEST_NVDIMM=
GUEST_NVDIMM_SIZE=512M
GUEST_PASSES=0
GUEST_FAILS=0
GUEST_SHOW_DEFAULT='^(daxnet-guest|DAXNET-|guest-init|\[ *[0-9.]+\] )'

# guest_init TAG: messages from here on are "[TAG  SECONDS] ..." (say).
guest_init() {
	GUEST_TAG=$1
	GUEST_T0=$(date +%s)
	# shellcheck disable=SC2317 # called by the sourcing script
	say() { guest_say "$@"; }
}
# guest_build_arg NAME: the script's --build (in $build) is required;
# makes it absolute. NAME prefixes the usage error.
guest_build_arg() {
	[ -n "${build:-}" ] || { echo "$1: --build is required" >&2; exit 2; }
	build=$(cd "$build" && pwd)
}

guest_say() {
	printf '[%s %4ds] %s\n' "$GUEST_TAG" $(($(date +%s) - GUEST_T0)) "$*"
}

guest_skip() {
	guest_say "SKIP: $*"
	exit 77
}

guest_kver() {
	dpkg-query -W -f='${Depends}' linux-image-amd64 2>/dev/null |
		sed -E 's/^linux-image-([^ ,]+).*/\1/' || true
}

guest_require() {
	local what
	GUEST_KVER=$(guest_kver)
	[ -n "$GUEST_KVER" ] || guest_skip "linux-image-amd64 is not installed"
	[ -r "/boot/vmlinuz-$GUEST_KVER" ] || guest_skip "/boot/vmlinuz-$GUEST_KVER is missing"
	for what in "$@"; do
		case "$what" in
		headers) [ -d "/lib/modules/$GUEST_KVER/build" ] ||
			guest_skip "linux-headers-$GUEST_KVER are missing" ;;
		busybox) ;;
		*) echo "guest_require: unknown requirement $what" >&2; exit 2 ;;
		esac
	done
	command -v qemu-system-x86_64 >/dev/null || guest_skip "qemu-system-x86 is missing"
	for what in "$@"; do
		if [ "$what" = busybox ]; then
			[ -x /bin/busybox ] || guest_skip "busybox-static is missing"
		fi
	done
}

guest_build_initramfs() {
	local work=$1 key
	key=$(cat "$GUEST_LIB_DIR/mkinitramfs.sh" "$GUEST_LIB_DIR/guest-init" |
		sha1sum | cut -c1-12)
	GUEST_INITRD=$work/initramfs-$GUEST_KVER-$key.cpio.gz
	if [ ! -f "$GUEST_INITRD" ]; then
		guest_say "building initramfs ($GUEST_KVER) with tests/kernel/mkinitramfs.sh"
		rm -f "$work"/initramfs-*.cpio.gz
		"$GUEST_LIB_DIR/mkinitramfs.sh" "$GUEST_KVER" "$GUEST_INITRD"
	fi
}

guest_prepare_nvdimm() {
	GUEST_NVDIMM=$1
	GUEST_NVDIMM_SIZE=${2:-512M}
	rm -f "$GUEST_NVDIMM"
	truncate -s "$GUEST_NVDIMM_SIZE" "$GUEST_NVDIMM"
}

guest_debug_cmdline() {
	# The kmalloc caches only (the module's allocations, accounted or not,
	# are kmalloc/kvmalloc): debugging every cache (skbs, sockets) makes
	# the TCG run several times slower.
	local a='slub_debug=FZPU,kmalloc-*,kmalloc-cg-* sysctl.kernel.hung_task_timeout_secs=60'
	if grep -qx 'CONFIG_KFENCE=y' "/boot/config-$GUEST_KVER" 2>/dev/null; then
		a="$a kfence.sample_interval=5"
	fi
	echo "$a"
}

guest_boot() {
	local run='' gsrc='' gbuild='' args='' log='' pidfile='' timeout_s=600 extra=''
	local show=$GUEST_SHOW_DEFAULT
	local nvdimm=$GUEST_NVDIMM size=$GUEST_NVDIMM_SIZE rc=0 smp=2 icount=''
	local -a pidopt=() accel=(-accel tcg,thread=multi) devdax=()
	local devdax_img=''
	while [ $# -gt 0 ]; do
		case "$1" in
		--run) run=$2; shift 2 ;;
		--src) gsrc=$2; shift 2 ;;
		--build) gbuild=$2; shift 2 ;;
		--args) args=$2; shift 2 ;;
		--log) log=$2; shift 2 ;;
		--timeout) timeout_s=$2; shift 2 ;;
		--pidfile) pidfile=$2; shift 2 ;;
		--show) show=$2; shift 2 ;;
		--nvdimm) nvdimm=$2; shift 2 ;;
		--nvdimm-size) size=$2; shift 2 ;;
		--devdax) devdax_img=$2; shift 2 ;;
		--smp) smp=$2; shift 2 ;;
		--icount) icount=$2; shift 2 ;;
		--cmdline) extra=$2; shift 2 ;;
		--) shift; break ;;
		*) echo "guest_boot: unknown argument $1" >&2; return 2 ;;
		esac
	done
	if [ -z "$run" ] || [ -z "$log" ] || [ -z "$nvdimm" ] || [ -z "$GUEST_INITRD" ]; then
		echo "guest_boot: needs --run, --log, guest_prepare_nvdimm and guest_build_initramfs" >&2
		return 2
	fi
	if [ -n "$icount" ]; then
		accel=(-accel tcg,thread=single -icount "shift=$icount,align=off,sleep=off")
	fi
	if [ -n "$pidfile" ]; then
		rm -f "$pidfile"
		pidopt=(-pidfile "$pidfile")
	fi
	if [ -n "$devdax_img" ]; then
		rm -f "$devdax_img"
		truncate -s "$size" "$devdax_img"
		devdax=(-object "memory-backend-file,id=mem2,share=on,mem-path=$devdax_img,size=$size"
			-device "nvdimm,id=nv2,memdev=mem2")
	fi
	# The status of QEMU (under timeout) is the pipeline's first; the ||
	# keeps set -e from ending the caller on a failing guest.
	{
		timeout --foreground -k 10 "$timeout_s" qemu-system-x86_64 \
			"${accel[@]}" -smp "$smp" -machine pc,nvdimm=on \
			-m 2G,slots=2,maxmem=8G -net none \
			-kernel "/boot/vmlinuz-$GUEST_KVER" -initrd "$GUEST_INITRD" \
			-append "console=ttyS0 panic=-1 oops=panic quiet tsc=reliable dxrun=$run dxsrc=$gsrc dxbuild=$gbuild dxargs=$args $extra" \
			-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
			-object "memory-backend-file,id=mem1,share=on,mem-path=$nvdimm,size=$size" \
			-device nvdimm,id=nv1,memdev=mem1 \
			-device pvpanic -action panic=exit-failure \
			-nographic -no-reboot "${pidopt[@]}" "${devdax[@]}" "$@" </dev/null 2>&1 |
			tee "$log.raw" | tr -d '\r' | tee "$log" |
			if [ -n "$show" ]; then grep --line-buffered -E "$show"; else cat >/dev/null; fi
		rc=${PIPESTATUS[0]}
	} || true
	rm -f "$log.raw"
	return "$rc"
}

guest_kill() {
	local pid
	pid=$(cat "$1" 2>/dev/null || true)
	if [ -n "$pid" ]; then
		kill -9 "$pid" 2>/dev/null || true
	fi
}

guest_results() {
	local log=$1 qrc=$2 timeout_s=${3:-} exit_line
	GUEST_FAILS=$(grep -ac '^DAXNET-FAIL' "$log" || true)
	GUEST_PASSES=$(grep -ac '^DAXNET-PASS' "$log" || true)
	exit_line=$(grep -a '^DAXNET-GUEST-EXIT' "$log" | tail -n 1 || true)
	guest_say "qemu exit status $qrc; $GUEST_PASSES passed, $GUEST_FAILS failed; ${exit_line:-no exit marker}"
	if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
		guest_say "FAIL: the guest timed out${timeout_s:+ after ${timeout_s}s} or was killed; last lines:"
		tail -n 40 "$log"
		return 1
	fi
	if [ "$qrc" != 0 ]; then
		guest_say "FAIL: the guest kernel panicked (pvpanic) or QEMU failed; last lines:"
		tail -n 40 "$log"
		return 1
	fi
	if [ "$exit_line" != "DAXNET-GUEST-EXIT 0" ] || [ "$GUEST_FAILS" != 0 ]; then
		grep -a '^DAXNET-FAIL' "$log" || true
		[ -n "$exit_line" ] || tail -n 40 "$log"
		guest_say "FAIL"
		return 1
	fi
	return 0
}
