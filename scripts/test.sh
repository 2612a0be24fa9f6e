#!/usr/bin/env bash
# Runs the test suite, optimised (numeric code is very slow in debug builds).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
swift test -c release -Xswiftc -enable-testing "$@"
