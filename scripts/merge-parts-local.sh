#!/bin/bash
# Runs one merge as N parallel processes on this machine, the way a scheduler runs the parts on
# several (merge --plan-only, N x merge --plan --part I/N at once, merge --plan --assemble),
# prints the time of each step and, with COMPARE=1, checks the folder against the one-process
# merge (byte for byte, `cmp` on every file) and prints that merge's time too.
#
#   scripts/merge-parts-local.sh N OUT MERGE-ARGS...
#   COMPARE=1 scripts/merge-parts-local.sh 3 /tmp/merged fixtures/merge/recipes/ties.yml --shard-size 60KB
#   scripts/merge-parts-local.sh 4 /tmp/m --method linear fixtures/family/capital-full fixtures/family/profession-full
#
# MERGE-ARGS are those of `weightsmith merge` without the output folder (given as OUT here).
# WEIGHTSMITH (default: weightsmith on PATH) names the binary. OUT must not exist yet.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,12p' "$0"; exit 2; }
N=$1; OUT=$2; shift 2
W="${WEIGHTSMITH:-weightsmith}"
work=$(mktemp -d "${TMPDIR:-/tmp}/weightsmith-parts-local-XXXXXX")
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
t0=$(now)
"$W" merge "$@" -o "$OUT" --plan-only "$work/plan.json" > "$work/plan.log"
t1=$(now)
pids=()
for i in $(seq 1 "$N"); do
    "$W" merge --plan "$work/plan.json" --part "$i/$N" --quiet > "$work/part-$i.log" 2>&1 &
    pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { failed=1; echo "part $((i + 1))/$N failed:"; cat "$work/part-$((i + 1)).log"; }
done
[ $failed -eq 0 ] || exit 1
t2=$(now)
"$W" merge --plan "$work/plan.json" --assemble > "$work/assemble.log"
t3=$(now)
shards=$(grep -o '[0-9]* shards\?' "$work/plan.log" | head -1)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v n="$N" -v s="$shards" \
    'BEGIN { printf "plan %.2f s (%s), %d parts in parallel %.2f s, assemble %.2f s, total %.2f s\n", b - a, s, n, c - b, d - c, d - a }'
if [ -n "${COMPARE:-}" ]; then
    one="$work/one/$(basename "$OUT")"
    t4=$(now)
    "$W" merge "$@" -o "$one" --quiet > /dev/null
    t5=$(now)
    awk -v a="$t4" -v b="$t5" 'BEGIN { printf "one process %.2f s\n", b - a }'
    diff <(cd "$one" && ls -A) <(cd "$OUT" && ls -A) > /dev/null || { echo "the file lists differ"; exit 1; }
    for f in $(cd "$one" && ls -A); do cmp -s "$one/$f" "$OUT/$f" || { echo "$f differs"; exit 1; }; done
    echo "identical to the one-process merge: $(cd "$OUT" && ls -A | wc -l) files"
fi
