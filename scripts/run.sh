#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# The main job: install what is missing, build, and run the persistent KV
# server (Redis protocol) on a file-backed pool with the best available
# transport (kernel module if /dev/daxnet exists, else io_uring, else epoll).
#
#   scripts/run.sh [extra daxnet-kv options]
# Environment: DAXNET_POOL (default /var/lib/daxnet/kv.pool), DAXNET_PORT (6380).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --run
scripts/build.sh default
pool=${DAXNET_POOL:-/var/lib/daxnet/kv.pool}
port=${DAXNET_PORT:-6380}
mkdir -p "$(dirname "$pool")"
if [ -x build/bin/daxnet-kv ]; then
	echo "daxnet-kv: talk to it with:  redis-cli -p $port   (Ctrl-C stops the server)"
	exec build/bin/daxnet-kv --pool "$pool" --port "$port" --transport auto "$@"
fi
# Before the KV server existed the main job was the pool tool.
[ -e "$pool" ] || build/bin/daxnet-pool create "$pool" --size 1G
exec build/bin/daxnet-pool info "$pool"
