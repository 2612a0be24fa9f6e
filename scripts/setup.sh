#!/usr/bin/env bash
# Installs what weightsmith needs on a Debian machine (idempotent, quiet when all is there):
# OpenBLAS and LAPACKE (required), and the Python packages the parity tests use (optional).
set -euo pipefail
missing=()
for p in libopenblas-dev liblapacke-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ "${WEIGHTSMITH_SKIP_PYTHON:-0}" != 1 ] && command -v python3 >/dev/null; then
  if ! python3 -c "import safetensors, numpy" 2>/dev/null; then
    echo "setup: installing Python safetensors + numpy (used only by parity tests)" >&2
    python3 -m pip install -q safetensors numpy >/dev/null 2>&1 || echo "setup: pip install failed; parity tests will be skipped" >&2
  fi
fi
