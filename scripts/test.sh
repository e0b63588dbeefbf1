#!/usr/bin/env bash
# The one test command (README, .ci/run): installs missing dependencies, builds the
# release preset and runs every CTest test (unit, integration, realdata).
# Real-data tests skip with a message when ../shared/data is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release
ctest --preset release -j "$(nproc)" "$@"
