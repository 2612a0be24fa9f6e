#!/usr/bin/env bash
# Merge benchmark: weightsmith vs mergekit-yaml (CPU) on three fine-tunes of a ~135M Llama.
#
# Usage: scripts/bench_merge.sh WORK_DIR
# WORK_DIR must hold base/ and ft-a/ ft-b/ ft-c/ (float32 HF folders), e.g. made with
#   weightsmith convert-gguf .../SmolLM2-135M-Instruct.Q4_1.gguf WORK_DIR/base
#   python3 scripts/make_bench_finetunes.py WORK_DIR/base WORK_DIR
# Prints, per method: wall time and peak RSS of both tools (weightsmith: the median of RUNS runs,
# default 5; mergekit: one run), and the physical floor (reading the inputs once from the page
# cache plus writing a file of the output's size). Every run starts after `sync`, so that no run
# pays for the previous one's writeback.
set -euo pipefail
W=$(cd "${1:?usage: scripts/bench_merge.sh WORK_DIR}" && pwd)
WS=${WEIGHTSMITH:-$(cd "$(dirname "$0")/.." && pwd)/.build/release/weightsmith}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
cd "$W"
inputs="base/model.safetensors ft-a/model.safetensors ft-b/model.safetensors ft-c/model.safetensors"
in_bytes=$(cat $inputs | wc -c)
out_bytes=$(stat -c %s base/model.safetensors)

recipe() {  # method params...
    local m=$1 p=$2
    printf 'merge_method: %s\nbase_model: %s/base\nmodels:\n' "$m" "$W"
    for f in ft-a ft-b ft-c; do printf '  - model: %s/%s\n    parameters: {%s}\n' "$W" "$f" "$p"; done
    printf 'dtype: float32\n'
}
recipe linear "weight: 1.0" | grep -v "^base_model:" > bench-linear.yml
recipe ties "weight: 1.0, density: 0.5" > bench-ties.yml
recipe dare_ties "weight: 1.0, density: 0.5" > bench-dare_ties.yml

measure() {  # label runs command...: the median wall time (and its peak RSS) of `runs` runs
    local label=$1 runs=$2; shift 2
    local all=() line
    for _ in $(seq "$runs"); do
        rm -rf "${@: -1}" "${@: -1}.partial"   # the output folder (last argument) of the previous run
        sync                                   # earlier runs' dirty pages are written back first
        /usr/bin/time -f "%e %M" -o time.txt "$@" > /dev/null 2> err.txt || { cat err.txt; exit 1; }
        all+=("$(cat time.txt)")
    done
    line=$(printf '%s\n' "${all[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
    read -r secs kb <<< "$line"
    printf '%-34s %8.2f s %9.0f MB   (runs: %s)\n' "$label" "$secs" "$(echo "$kb / 1000" | bc -l)" \
        "$(printf '%s\n' "${all[@]}" | cut -d' ' -f1 | paste -sd' ')"
}

cat $inputs > /dev/null   # warm the page cache
echo "inputs: $(echo "$in_bytes / 1000000" | bc) MB (4 files), output: $(echo "$out_bytes / 1000000" | bc) MB, $(nproc) cores, OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS"
RUNS=${RUNS:-5}
floors=()
for _ in $(seq "$RUNS"); do
    sync
    start=$(date +%s.%N); cat $inputs > /dev/null; mid=$(date +%s.%N)
    head -c "$out_bytes" /dev/zero > floor.bin; end=$(date +%s.%N)
    sync floor.bin; synced=$(date +%s.%N); rm -f floor.bin
    floors+=("$(echo "$end - $start" | bc) $(echo "$mid - $start" | bc) $(echo "$end - $mid" | bc) $(echo "$synced - $end" | bc)")
done
read -r total rd wr fs <<< "$(printf '%s\n' "${floors[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")"
printf '%-34s %8.2f s (read %.2f s + write %.2f s; +fsync %.2f s; median of %s)\n' "floor" "$total" "$rd" "$wr" "$fs" "$RUNS"
for m in linear ties dare_ties; do
    measure "weightsmith $m" "$RUNS" "$WS" merge "bench-$m.yml" --quiet --seed 1 "ws-$m"
    measure "weightsmith $m (--no-hash)" "$RUNS" "$WS" merge "bench-$m.yml" --quiet --seed 1 --no-hash "ws-$m"
    measure "mergekit-yaml $m" 1 mergekit-yaml "bench-$m.yml" --no-copy-tokenizer --random-seed 1 "mk-$m"
done
