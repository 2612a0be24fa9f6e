#!/usr/bin/env bash
# Safetensors I/O benchmark (release build): BF16 -> F32 conversion throughput of
# `weightsmith convert` vs Python (safetensors + torch / numpy) vs `cat FILE > /dev/null`, all in
# the same run on warm page cache; then peak RSS of inspect/convert on a multi-GB sharded checkpoint.
#
# Usage: scripts/bench_convert.sh [BENCH_DIR]   (default /tmp/ws-bench; needs ~15 GB free there)
#        On tmpfs (/dev/shm) the figures show the CPU/memory path; on a disk they include fsync.
#        SKIP_RSS=1 scripts/bench_convert.sh    (throughput part only; SKIP_THROUGHPUT=1: RSS part only)
# Needs python3 with torch, numpy, safetensors; /usr/bin/time (apt-get install time).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-/tmp/ws-bench}"
REPS="${REPS:-3}"
export OPENBLAS_NUM_THREADS=1
mkdir -p "$DIR"
if [ ! -x /usr/bin/time ]; then apt-get install -y time >/dev/null; fi

swift build -c release --product weightsmith 2>&1 | tail -1
WS="$(swift build -c release --show-bin-path)/weightsmith"

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM"
echo "swift: $(swift --version 2>&1 | head -1)"
python3 -c 'import safetensors, numpy, torch; print("python: safetensors", safetensors.__version__, "numpy", numpy.__version__, "torch", torch.__version__)'
echo "F16C/AVX2: $(grep -o -w -E 'f16c|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"

# 1 GiB BF16 and F16 files: 8 tensors of 64 Mi elements.
python3 - "$DIR" <<'PY'
import os, sys, torch
from safetensors.torch import save_file
d = sys.argv[1]
for dt, name in [(torch.bfloat16, "bf16.safetensors"), (torch.float16, "f16.safetensors")]:
    p = os.path.join(d, name)
    if os.path.exists(p) and os.path.getsize(p) > 2**30:
        continue
    g = torch.Generator().manual_seed(0)
    ts = {f"model.layers.{i}.mlp.weight": torch.randn(8192, 8192, generator=g).to(dt) for i in range(8)}
    save_file(ts, p, metadata={"format": "pt"})
PY

# Best-of-REPS wall time of a command (seconds), output removed after each run.
best() {
    local out="$1"; shift
    local b=""
    for _ in $(seq "$REPS"); do
        rm -rf "$out"
        local t0 t1
        t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N)
        local t; t=$(echo "$t1 - $t0" | bc -l)
        if [ -z "$b" ] || (( $(echo "$t < $b" | bc -l) )); then b=$t; fi
    done
    rm -rf "$out"
    echo "$b"
}

PY_TORCH='import sys, torch
from safetensors.torch import load_file, save_file
t = load_file(sys.argv[1])
save_file({k: v.to(torch.float32) for k, v in t.items()}, sys.argv[2], metadata={"format": "pt"})'
PY_NUMPY='import sys, numpy as np
from safetensors.numpy import load_file, save_file
t = load_file(sys.argv[1])
save_file({k: v.astype(np.float32) for k, v in t.items()}, sys.argv[2], metadata={"format": "pt"})'

for src in bf16 f16; do
    [ "${SKIP_THROUGHPUT:-0}" = 1 ] && break
    IN="$DIR/$src.safetensors"
    SIZE=$(stat -c %s "$IN")
    cat "$IN" > /dev/null  # warm the page cache
    T_CAT=$(best /nonexistent cat "$IN")
    T_CP=$(best "$DIR/out-cp.safetensors" cp "$IN" "$DIR/out-cp.safetensors")
    T_DD=$(best "$DIR/out-dd" dd if=/dev/zero of="$DIR/out-dd" bs=1M count=$((2 * SIZE / 1048576)) status=none)
    T_WS=$(best "$DIR/out-ws.safetensors" "$WS" convert "$IN" "$DIR/out-ws.safetensors" --dtype f32)
    if [ "$src" = bf16 ]; then
        T_PY=$(best "$DIR/out-py.safetensors" python3 -c "$PY_TORCH" "$IN" "$DIR/out-py.safetensors"); PYNAME="safetensors.torch load + .to(float32) + save"
    else
        T_PY=$(best "$DIR/out-py.safetensors" python3 -c "$PY_NUMPY" "$IN" "$DIR/out-py.safetensors"); PYNAME="safetensors.numpy load + astype(float32) + save"
    fi
    echo
    echo "== $src -> f32, input $(echo "$SIZE / 2^30" | bc -l | cut -c1-4) GiB (best of $REPS; GB/s = input bytes / s) =="
    printf "%-48s %8.3f s  %6.2f GB/s\n" "cat FILE > /dev/null" "$T_CAT" "$(echo "$SIZE / $T_CAT / 1000000000" | bc -l)"
    printf "%-48s %8.3f s  %6.2f GB/s\n" "cp FILE OUT (1x in, 1x out)" "$T_CP" "$(echo "$SIZE / $T_CP / 1000000000" | bc -l)"
    printf "%-48s %8.3f s  %6.2f GB/s\n" "dd 2x FILE bytes of zeros (the output's size)" "$T_DD" "$(echo "$SIZE / $T_DD / 1000000000" | bc -l)"
    printf "%-48s %8.3f s  %6.2f GB/s\n" "weightsmith convert --dtype f32" "$T_WS" "$(echo "$SIZE / $T_WS / 1000000000" | bc -l)"
    printf "%-48s %8.3f s  %6.2f GB/s\n" "$PYNAME" "$T_PY" "$(echo "$SIZE / $T_PY / 1000000000" | bc -l)"
    printf "ratios (time): weightsmith / cat = %.2fx, weightsmith / dd of the output size = %.2fx, python / weightsmith = %.2fx\n" \
        "$(echo "$T_WS / $T_CAT" | bc -l)" "$(echo "$T_WS / $T_DD" | bc -l)" "$(echo "$T_PY / $T_WS" | bc -l)"
done

[ "${SKIP_RSS:-0}" = 1 ] && exit 0

# Peak RSS on a 4 GiB sharded BF16 checkpoint (4 shards x 1 GiB, 32 tensors of 128 MiB).
CK="$DIR/big"
if [ ! -f "$CK/model.safetensors.index.json" ]; then
    mkdir -p "$CK"
    python3 - "$CK" <<'PY'
import json, os, sys, torch
from safetensors.torch import save_file
d, wm, total = sys.argv[1], {}, 0
g = torch.Generator().manual_seed(1)
for s in range(4):
    name = f"model-{s+1:05d}-of-00004.safetensors"
    ts = {f"model.layers.{8*s+i}.mlp.up_proj.weight": torch.randn(8192, 8192, generator=g).to(torch.bfloat16) for i in range(8)}
    save_file(ts, os.path.join(d, name), metadata={"format": "pt"})
    for k, v in ts.items():
        wm[k] = name; total += v.numel() * 2
    del ts
json.dump({"metadata": {"total_size": total}, "weight_map": wm}, open(os.path.join(d, "model.safetensors.index.json"), "w"), indent=2)
json.dump({"model_type": "llama"}, open(os.path.join(d, "config.json"), "w"))
PY
fi
echo
echo "== peak RSS, 4 GiB BF16 checkpoint in 4 shards, largest tensor 128 MiB =="
rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident/{r=$2} /Elapsed/{e=$2} END{printf "peak RSS %4.0f MiB, wall %s", r/1024, e}'; }
echo "inspect:                         $(rss "$WS" inspect "$CK")"
echo "inspect --stats:                 $(rss "$WS" inspect --stats "$CK")"
rm -rf "$DIR/big-f32"
echo "convert --dtype f32 (8 GiB out): $(rss "$WS" convert "$CK" "$DIR/big-f32" --dtype f32 --shard-size 2GB)"
rm -rf "$DIR/big-f32"
