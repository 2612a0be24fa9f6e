#!/usr/bin/env bash
# `weightsmith compare` on SmolLM2-135M (base, rank-8 LoRA, full fine-tune) vs a numpy script
# computing the same quantities, in one run: cold cache, warm cache (second run on the same
# base), and numpy. Inputs are made by scripts/make_smollm_spectral_bench.py (not committed).
# Usage: scripts/bench_spectral.sh [INPUT_DIR=/tmp/ws-bench]; OPENBLAS_NUM_THREADS defaults to 1.
# BIN=path/to/weightsmith skips the build; SCRATCH=.build-x builds there instead of .build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/time ]; then apt-get install -y time >/dev/null; fi
IN="${1:-/tmp/ws-bench}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
if [ ! -f "$IN/lora/adapter_config.json" ]; then
  python3 scripts/make_smollm_spectral_bench.py "$IN" >&2
fi
SCRATCH="${SCRATCH:-.build}"
if [ -z "${BIN:-}" ]; then
  swift build -c release --product weightsmith --scratch-path "$SCRATCH" >&2
  BIN="$SCRATCH/release/weightsmith"
fi
CACHE=$(mktemp -d)
echo "# OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS  $(date -u +%FT%TZ)  $(nproc) cores  load: $(cut -d' ' -f1-3 /proc/loadavg)"
# t CMD...: runs CMD (stdout to /tmp/ws-bench-out.$$), prints "wall_seconds cpu_seconds" (CPU = user + sys
# of the process and its children: the CPU time is less sensitive than wall time to other jobs).
t() {
  local s e
  s=$(date +%s.%N)
  /usr/bin/time -f "%U %S" -o /tmp/ws-bench-cpu.$$ "$@" > /tmp/ws-bench-out.$$
  e=$(date +%s.%N)
  echo "$(echo "$e - $s" | bc) $(awk '{print $1 + $2}' /tmp/ws-bench-cpu.$$)"
}
COLD=$(t $BIN compare --base "$IN/base" --lora "$IN/lora" --full "$IN/full" --cache-dir "$CACHE" --json)
python3 -c "import json,sys; r=json.load(open('/tmp/ws-bench-out.$$')); print('weightsmith:', {f['label']: f['summary']['totalIntruders'] for f in r['fineTunes']}, 'matrices', len(r['fineTunes'][0]['matrices']), 'mean phi', sum(o['overlap']['phi'] for o in r['overlaps'])/len(r['overlaps']), 'mean amplification', {f['label']: f['summary'].get('meanAmplification') for f in r['fineTunes']})"
WARM=$(t $BIN compare --base "$IN/base" --lora "$IN/lora" --full "$IN/full" --cache-dir "$CACHE" --json)
# A cache holding only the base's decompositions (as after analysing some other fine-tune of it).
BASEONLY=$(mktemp -d)
$BIN spectrum --base "$IN/base" --tuned "$IN/base" --cache-dir "$BASEONLY" --json > /dev/null
BASECACHED=$(t $BIN compare --base "$IN/base" --lora "$IN/lora" --full "$IN/full" --cache-dir "$BASEONLY" --json)
rm -rf "$BASEONLY"
NUMPY=$(t python3 scripts/spectral_compare_numpy.py "$IN/base" "$IN/lora" "$IN/full")
cat /tmp/ws-bench-out.$$
rm -rf "$CACHE" /tmp/ws-bench-out.$$ /tmp/ws-bench-cpu.$$
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
NW=${NUMPY%% *}; NC=${NUMPY##* }
printf "\n| run | wall s | numpy wall / this | CPU s | numpy CPU / this |\n|---|---|---|---|---|\n"
for pair in "weightsmith compare, cold cache:$COLD" "weightsmith compare, warm cache (same base again):$WARM" "weightsmith compare, only the base cached (new fine-tunes of a known base):$BASECACHED" "numpy script:$NUMPY"; do
  label="${pair%%:*}"; v="${pair##*:}"; w=${v%% *}; c=${v##* }
  printf "| %s | %.2f | %.1fx | %.2f | %.1fx |\n" "$label" "$w" "$(echo "$NW / $w" | bc -l)" "$c" "$(echo "$NC / $c" | bc -l)"
done
printf "\nsecond run / first run: %.1fx faster (wall)\n" "$(echo "${COLD%% *} / ${WARM%% *}" | bc -l)"
