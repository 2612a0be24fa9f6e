#!/usr/bin/env bash
# Real-size merges on synthetic checkpoints (scripts/make_synthetic_checkpoints.py): the floor
# (read every input shard once, write the output's bytes once with fsync), then weightsmith's TIES
# and linear merges of the base and its fine-tunes, cold (page cache dropped; needs root) and with
# and without the input SHA-256 of the model card, and the same TIES merge as 2 and 4 parallel
# parts (scripts/merge-parts-local.sh), each output checked against the one-process TIES output by
# the SHA-256 of every file. One output exists at a time (the disk holds the inputs and one output).
#
#   scripts/bench_real_size.sh MODELS_DIR [OUT]     (MODELS_DIR holds base/ and ft-1/ ... ft-N/)
#
# WEIGHTSMITH names the binary (default: .build/release/weightsmith). Prints one line per run:
# wall seconds, peak RSS, and the ratio to the cold floor.
set -euo pipefail
models=$1; out=${2:-$models/../merged}
here=$(cd "$(dirname "$0")/.." && pwd)
W=${WEIGHTSMITH:-$here/.build/release/weightsmith}
fts=$(ls -d "$models"/ft-* | sort)
inputs=$(ls "$models"/base/*.safetensors $(for f in $fts; do echo "$f"/*.safetensors; done))
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
log() { printf '%s\n' "$*"; }
digest() { (cd "$1" && sha256sum $(ls | sort) | sha256sum | cut -c1-16); }
log "inputs: $(echo $inputs | wc -w) shards, $(du -cb $inputs | tail -1 | cut -f1) bytes; machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB"

# Floor: read every input shard once (cold), write as many bytes as the output with fsync.
drop
t0=$(date +%s.%N); cat $inputs > /dev/null; t1=$(date +%s.%N)
out_bytes=$(du -cb "$models"/base/*.safetensors | tail -1 | cut -f1)
mkdir -p "$out.floor"
dd if=/dev/zero of="$out.floor/x" bs=64M count=$(( (out_bytes + 67108863) / 67108864 )) conv=fsync status=none
t2=$(date +%s.%N); rm -rf "$out.floor"
floor=$(echo "$t2 - $t0" | bc)
log "floor, cold: read $(echo "$t1 - $t0" | bc) s + write $(echo "$t2 - $t1" | bc) s = $floor s"

run() {  # name, then merge arguments (OUT appended)
    local name=$1; shift
    rm -rf "$out"; drop
    /usr/bin/time -f "%e %M" -o "$out.time" "$W" merge "$@" -o "$out" --quiet > /dev/null
    read -r wall rss < "$out.time"; rm -f "$out.time"
    log "$name: $wall s, peak RSS $((rss / 1024)) MB, $(echo "scale=2; $wall / $floor" | bc)x the cold floor, output $(digest "$out")"
}
ties=(--method ties --base "$models/base" $fts --weight 1 --density 0.5 --dtype bf16)
run "ties, cold, --no-hash" "${ties[@]}" --no-hash
ref=$(digest "$out")
run "ties, cold, default (input SHA-256 for the card)" "${ties[@]}"
# warm: the same again without dropping the cache first
rm -rf "$out"
/usr/bin/time -f "%e %M" -o "$out.time" "$W" merge "${ties[@]}" --no-hash -o "$out" --quiet > /dev/null
read -r wall rss < "$out.time"; rm -f "$out.time"
log "ties, warm, --no-hash: $wall s, peak RSS $((rss / 1024)) MB, output $(digest "$out")"
run "linear, cold, --no-hash" --method linear $fts --dtype bf16 --no-hash
for n in 2 4; do
    rm -rf "$out"; drop
    t0=$(date +%s.%N)
    WEIGHTSMITH=$W bash "$here/scripts/merge-parts-local.sh" "$n" "$out" "${ties[@]}" --no-hash | sed "s/^/  /"
    t1=$(date +%s.%N)
    d=$(digest "$out")
    log "ties in $n parts, cold: $(echo "$t1 - $t0" | bc) s in all, output $d ($([ "$d" = "$ref" ] && echo "identical to the one-process merge" || echo "DIFFERS from the one-process merge"))"
done
rm -rf "$out"
