#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Configures and builds daxnet with a CMake preset (default: "default").
#   scripts/build.sh [preset]
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-default}
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$(nproc)"
