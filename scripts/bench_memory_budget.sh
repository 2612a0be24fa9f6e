#!/usr/bin/env bash
# Peak memory of every merge method at a real size, against the plan's estimate and under a
# budget: for each method, the estimate `merge --dry-run` prints, then the merge itself with the
# default (automatic) budget and, with BUDGET set, with `--memory-budget BUDGET`, each run's peak
# RSS measured by /usr/bin/time. Inputs from scripts/make_synthetic_checkpoints.py (base/ and at
# least ft-1/ ... ft-3/). Warm page cache (the inputs are read once before the first run).
#
#   scripts/bench_memory_budget.sh MODELS_DIR [METHOD ...]
#
# WEIGHTSMITH names the binary (default: .build/release/weightsmith); BUDGET (e.g. 512MB) adds
# the budgeted run; OUT the output folder (default MODELS_DIR/../budget-out, removed after each
# run); ESTIMATE_ONLY=1 prints the estimates without merging. Prints one table row per run:
# method, estimate, budget, wall s, peak RSS, RSS / estimate. Inputs made with --zeros (sparse,
# all zero) serve for the memory figures at sizes the disk cannot hold.
set -euo pipefail
models=$1; shift
here=$(cd "$(dirname "$0")/.." && pwd)
W=${WEIGHTSMITH:-$here/.build/release/weightsmith}
out=${OUT:-$models/../budget-out}
work=$(mktemp -d); trap 'rm -rf "$work" "$out"' EXIT
B=$models/base; F1=$models/ft-1; F2=$models/ft-2; F3=$models/ft-3
methods=("$@")
[ ${#methods[@]} -gt 0 ] || methods=(linear task_arithmetic ties dare_linear dare_ties breadcrumbs breadcrumbs_ties
    della della_linear localize_stitch slerp nuslerp multislerp karcher model_stock passthrough tsv iso_c iso_cts
    sce ram ramplus_tl nearswap arcee_fusion)

recipe() {  # method -> recipe text (bf16 in and out)
    local m=$1 three="  - model: $F1
  - model: $F2
  - model: $F3"
    case $m in
    linear|multislerp|karcher)
        printf 'merge_method: %s\nmodels:\n%s\nparameters:\n  weight: 1\n' "$m" "$three" ;;
    task_arithmetic)
        printf 'merge_method: %s\nbase_model: %s\nmodels:\n%s\nparameters:\n  weight: 0.5\n' "$m" "$B" "$three" ;;
    ties|dare_ties|dare_linear|localize_stitch)
        printf 'merge_method: %s\nbase_model: %s\nmodels:\n%s\nparameters:\n  weight: 1\n  density: 0.5\n' "$m" "$B" "$three" ;;
    breadcrumbs|breadcrumbs_ties)
        printf 'merge_method: %s\nbase_model: %s\nmodels:\n%s\nparameters:\n  weight: 1\n  density: 0.9\n  gamma: 0.01\n' "$m" "$B" "$three" ;;
    della|della_linear)
        printf 'merge_method: %s\nbase_model: %s\nmodels:\n%s\nparameters:\n  weight: 1\n  density: 0.5\n  epsilon: 0.1\n' "$m" "$B" "$three" ;;
    slerp)
        printf 'merge_method: slerp\nbase_model: %s\nmodels:\n  - model: %s\n  - model: %s\nparameters:\n  t: 0.5\n' "$B" "$B" "$F1" ;;
    nuslerp)
        printf 'merge_method: nuslerp\nmodels:\n  - model: %s\n    parameters: {weight: 0.5}\n  - model: %s\n    parameters: {weight: 0.5}\n' "$F1" "$F2" ;;
    model_stock|tsv|iso_c|iso_cts|ram|ramplus_tl)
        printf 'merge_method: %s\nbase_model: %s\nmodels:\n%s\n' "$m" "$B" "$three" ;;
    sce)
        printf 'merge_method: sce\nbase_model: %s\nmodels:\n%s\nparameters:\n  select_topk: 0.5\n' "$B" "$three" ;;
    passthrough)
        n=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['num_hidden_layers'])" "$B/config.json")
        printf 'merge_method: passthrough\nslices:\n  - sources:\n      - model: %s\n        layer_range: [0, %s]\n' "$B" "$n" ;;
    nearswap)
        printf 'merge_method: nearswap\nbase_model: %s\nmodels:\n  - model: %s\n  - model: %s\nparameters:\n  t: 0.005\n' "$B" "$B" "$F1" ;;
    arcee_fusion)
        printf 'merge_method: arcee_fusion\nbase_model: %s\nmodels:\n  - model: %s\n  - model: %s\n' "$B" "$B" "$F1" ;;
    *) echo "unknown method $m" >&2; return 1 ;;
    esac
    printf 'dtype: bfloat16\n'
}

mb() { python3 -c "
import re,sys
m=re.match(r'([0-9.]+) *([KMGT]?B)', sys.argv[1]); f={'B':1,'KB':1e3,'MB':1e6,'GB':1e9,'TB':1e12}
print(int(float(m.group(1))*f[m.group(2)]/1e6))" "$1"; }

[ -n "${ESTIMATE_ONLY:-}" ] || cat "$B"/*.safetensors "$F1"/*.safetensors "$F2"/*.safetensors "$F3"/*.safetensors > /dev/null
printf 'machine: %s cores, %s GiB; binary %s\n' "$(nproc)" "$(free -g | awk '/Mem/{print $2}')" "$W"
printf '| method | estimate (MB) | budget | wall (s) | peak RSS (MB) | RSS / estimate |\n|---|---|---|---|---|---|\n'
for m in "${methods[@]}"; do
    recipe "$m" > "$work/$m.yml"
    rm -rf "$out"
    est=$("$W" merge "$work/$m.yml" "$out" --dry-run --no-hash 2>&1 | sed -n 's/^estimated peak memory: \([0-9.]* *[KMGT]*B\).*/\1/p')
    [ -n "$est" ] || { echo "| $m | (no estimate: $("$W" merge "$work/$m.yml" "$out" --dry-run 2>&1 | tail -1)) |"; continue; }
    e=$(mb "$est")
    if [ -n "${ESTIMATE_ONLY:-}" ]; then printf '| %s | %s | | | | |\n' "$m" "$e"; continue; fi
    for budget in default ${BUDGET:-}; do
        rm -rf "$out"
        extra=(); [ "$budget" = default ] || extra=(--memory-budget "$budget")
        if /usr/bin/time -f "%e %M" -o "$work/time" "$W" merge "$work/$m.yml" "$out" --no-hash --quiet "${extra[@]}" > "$work/log" 2>&1; then
            read -r wall rss < "$work/time"
            printf '| %s | %s | %s | %s | %s | %s |\n' "$m" "$e" "$budget" "$wall" "$((rss / 1024))" \
                "$(python3 -c "print(f'{$rss / 1024 / max($e, 1):.2f}')")"
        else
            printf '| %s | %s | %s | failed: %s | | |\n' "$m" "$e" "$budget" "$(tail -1 "$work/log")"
        fi
    done
done
