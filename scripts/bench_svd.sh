#!/usr/bin/env bash
# SVD benchmark: weightsmith's float32 sgesdd vs scipy (float32 gesdd) and numpy (float64) in one run.
# Usage: scripts/bench_svd.sh [sizes=512,1024,2048] [repeats=3]; OPENBLAS_NUM_THREADS defaults to 1.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES="${1:-512,1024,2048}"; REPEATS="${2:-3}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
swift build -c release --product weightsmith-bench >&2
echo "# OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS  $(date -u +%FT%TZ)  $(nproc) cores  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
OUT=$(mktemp)
.build/release/weightsmith-bench svd --sizes "$SIZES" --repeats "$REPEATS" | tee -a "$OUT"
python3 scripts/bench_svd.py "$SIZES" "$REPEATS" | tee -a "$OUT"
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
sizes = sorted({r["n"] for r in rows})
impls = ["weightsmith sgesdd", "scipy gesdd f32", "numpy.linalg.svd"]
t = {(r["impl"], r["n"]): r["best_s"] for r in rows}
print("\n| n | weightsmith (s) | scipy gesdd f32 (s) | numpy.linalg.svd f64 (s) | ours / scipy |")
print("|---|---|---|---|---|")
for n in sizes:
    ours, sp, npy = (t.get((i, n)) for i in impls)
    print(f"| {n} | {ours:.3f} | {sp:.3f} | {npy:.3f} | {ours/sp:.2f}x |")
PY
rm -f "$OUT"
