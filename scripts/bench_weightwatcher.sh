#!/usr/bin/env bash
# `weightsmith spectrum MODEL` against weightwatcher's analyze() on the same safetensors folder,
# one after the other, RUNS times, with the defaults of both (no environment variables set).
#   scripts/bench_weightwatcher.sh MODEL_DIR [RUNS]
# Prints each run's wall time and peak RSS, weightwatcher's own analyze() time, and checks that
# the per-layer metrics agree (scripts/weightwatcher_reference.py --compare).
set -euo pipefail
model=$1; runs=${2:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
ws=${WEIGHTSMITH:-$here/.build/release/weightsmith}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for i in $(seq "$runs"); do
  /usr/bin/time -f "weightsmith spectrum MODEL: %e s wall, %M KB peak RSS" "$ws" spectrum "$model" --json --quiet > "$tmp/ours.json" 2> "$tmp/ws.time"
  tail -1 "$tmp/ws.time"
  python3 -c "import json; print('  its own timer: %.2f s' % json.load(open('$tmp/ours.json'))['seconds'])"
  /usr/bin/time -f "weightwatcher analyze(): %e s wall, %M KB peak RSS" python3 "$here/scripts/weightwatcher_reference.py" "$model" \
      --compare "$tmp/ours.json" > "$tmp/cmp.json" 2> "$tmp/ww.log"
  grep -E "^weightwatcher [0-9]" "$tmp/ww.log" | sed 's/^/  /'
  tail -1 "$tmp/ww.log"
done
python3 - "$tmp/cmp.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("agreement over %d matrices (missing %d, extra %d):" % (d["matrices"], len(d["missing_in_weightsmith"]), len(d["extra_in_weightsmith"])))
for k, v in d["largest_differences"].items():
    print("  %s: %s" % (k, ("max |diff| %.2e (%s)" % tuple(v)) if isinstance(v[0], float) else "%d matrices" % len(v)))
PY
