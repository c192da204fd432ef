#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# Guest side of the reliability tests (docs/reliability.md). Runs inside the
# test guest booted by tests/kernel's initramfs (chroot of the read-only
# host root, /tmp a tmpfs), started by tests/reliability/guest/host-reliability.sh
# with dxrun= pointing here. DXARGS selects the steps:
#
#   ringfuzz        format the NVDIMM (fsdax, ext4 -o dax), load daxnet.ko,
#                   run daxnet_ringfuzz on a DAX pool and on a shm pool,
#                   unload, fail on any WARN/BUG/oops in dmesg
#   powercut-load   mount the NVDIMM as it is (formatting it on the first
#                   boot), load daxnet.ko, verify the previous boot's
#                   acknowledged writes if the host left an expectation
#                   file, then run write load until the host kills QEMU
#   powercut-verify mount, load, verify, stop cleanly
#
# Markers on the serial console: DAXNET-PASS/FAIL <step>, and the load's
# PC-* lines (powercut.py) that the host turns into the expectation file.
set -u
# shellcheck source=tests/kernel/guest-common.sh
. "$DXSRC/tests/kernel/guest-common.sh"
here=$(dirname "$0")
ko=$DXBUILD/kernel/daxnet.ko
pmem=/tmp/pmem

ip link set lo up
cd /tmp || exit 1

if has ringfuzz; then
	if mount_pmem $pmem 1 && load_daxnet "$ko"; then
		pass setup
		seed=$(cut -d' ' -f1 /proc/uptime | tr -d .)
		for dir in $pmem /dev/shm; do
			say "ringfuzz on $dir, seed $seed"
			if timeout -k 5 600 "$DXBUILD/tests/reliability/daxnet_ringfuzz" --pool-dir "$dir" \
				--steps "$(opt steps 20000)" --seed "$seed"; then
				pass "ringfuzz $dir"
			else
				fail "ringfuzz $dir" "exit status $?"
			fi
			seed=$((seed + 1))
		done
		if rmmod daxnet; then pass rmmod; else fail rmmod; fi
	else
		fail setup "NVDIMM or daxnet.ko"
	fi
	check_dmesg
fi

if has powercut-load || has powercut-verify; then
	fresh=0
	blkid /dev/pmem0 >/dev/null 2>&1 || fresh=1
	if mount_pmem $pmem $fresh && load_daxnet "$ko"; then
		pass setup
	else
		fail setup "NVDIMM or daxnet.ko"
		exit 1
	fi
	exp=$(opt expect "")
	mode=load
	has powercut-verify && mode=verify
	say "powercut: mode $mode, boot $(opt boot 0), expectation ${exp:-none}"
	python3 "$here/powercut.py" --bin-dir "$DXBUILD/bin" --dir $pmem --mode $mode \
		${exp:+--expect "$exp"} --boot "$(opt boot 0)" --transport "$(opt transport kernel)"
	rc=$?
	if [ $rc = 0 ]; then pass "powercut-$mode"; else fail "powercut-$mode" "exit status $rc"; fi
	check_dmesg
fi
exit $failed
