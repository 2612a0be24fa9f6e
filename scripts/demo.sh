#!/usr/bin/env bash
# Builds weightsmith and runs its demo on the small committed checkpoints in fixtures/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}"
swift build -c release --product weightsmith >&2
exec .build/release/weightsmith demo "$@"
