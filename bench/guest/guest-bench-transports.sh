#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# Runs inside the daxnet test guest (tests/kernel/host-kernel-tests.sh boots it):
# the rpc and WAL workloads on daxnet-httpd over the kernel transport
# (daxnet.ko, already loaded by guest-kernel-tests.sh), io_uring and epoll — same
# guest, same run, pools on the DAX mount. The guest is 13-100x slower than
# the host, so only ratios between the transports mean anything.
#
# Environment from guest-init: DXSRC (source tree), DXBUILD (build tree).
# Optional: DXBENCH_SECONDS (per run, default 4), DXBENCH_DAX (default
# /tmp/pmem). Results are printed as DAXNET-BENCH-META / DAXNET-BENCH-ROW
# lines on the console; bench/guest/collect.py turns the serial log into
# the guest section of docs/benchmarks.md.
set -u
dax=${DXBENCH_DAX:-/tmp/pmem}
secs=${DXBENCH_SECONDS:-4}
if [ ! -c /dev/daxnet ]; then
	echo "guest-bench-transports: /dev/daxnet missing (load daxnet.ko first); the kernel rows will be skipped" >&2
fi
mkdir -p "$dax"
exec python3 "$DXSRC/bench/run.py" --guest --bin-dir "$DXBUILD/bin" --dax-dir "$dax" \
	--pool-size 96M --seconds "$secs" --out /tmp/bench-out
