#!/usr/bin/env bash
# Builds the libFuzzer harnesses (Fuzz/, -sanitize=fuzzer,address) and runs each for a time or
# a number of executions, one at a time, on its committed corpus (Fuzz/Corpus/NAME).
#
#   scripts/fuzz.sh [--seconds N | --runs N] [--no-build] [--merge] [harness...]
#
# Harnesses: safetensors gguf recipe jsonl tokenizer adapter (default: all).
# --merge minimises each corpus in place with the inputs found (libFuzzer -merge=1).
# New inputs go to a scratch folder (Fuzz/.build/new-corpus/NAME), crashes to Fuzz/.build/findings/NAME.
# An input over 20 s is a hang, RSS over 1 GB a finding (-timeout=20, -rss_limit_mb=1024). Leak
# detection is off: the leaks it reports are Foundation's (NSRegularExpression), not a safety issue.
# Extra libFuzzer flags: FUZZ_FLAGS="-max_len=65536" scripts/fuzz.sh ...
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
seconds=60 runs="" build=1 merge=0 harnesses=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=$2; runs=""; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        --merge) merge=1; shift ;;
        -h|--help) sed -n 2,13p "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) harnesses+=("$1"); shift ;;
    esac
done
[ ${#harnesses[@]} -gt 0 ] || harnesses=(safetensors gguf recipe jsonl tokenizer adapter)
BUILD=$ROOT/Fuzz/.build
if [ $build = 1 ]; then
    nice -n 19 swift build -c release --package-path Fuzz --build-path "$BUILD" \
        -Xswiftc -sanitize=fuzzer,address \
        -Xcc -fsanitize=fuzzer-no-link,address
fi
BIN=$BUILD/release/weightsmith-fuzz
for h in "${harnesses[@]}"; do
    corpus=$ROOT/Fuzz/Corpus/$h
    [ -d "$corpus" ] || { echo "no corpus folder $corpus" >&2; exit 2; }
    new=$BUILD/new-corpus/$h findings=$BUILD/findings/$h
    mkdir -p "$new" "$findings"
    limit=(-max_total_time="$seconds")
    [ -n "$runs" ] && limit=(-runs="$runs")
    echo "== $h: ${limit[*]}"
    start=$(date +%s.%N)
    # -jobs=1 runs the fuzzer in one child process whose log (fuzz-0.log) goes to a folder of the
    # harness's own (Fuzz/.build/run/NAME), so that two harnesses can run side by side.
    # ASAN_OPTIONS: also no leak check at exit (-detect_leaks=0 covers only the per-input check;
    # the exit-time report is Foundation's NSRegularExpression, one allocation, and would be
    # written as a crash-<sha1 of the empty input> artifact).
    mkdir -p "$BUILD/run/$h"
    (cd "$BUILD/run/$h" && WEIGHTSMITH_FUZZ=$h ASAN_OPTIONS=detect_leaks=0 nice -n 19 "$BIN" "$new" "$corpus" "${limit[@]}" -jobs=1 -workers=1 \
        -timeout=20 -rss_limit_mb=1024 -detect_leaks=0 -print_final_stats=1 -artifact_prefix="$findings/" ${FUZZ_FLAGS:-}) \
        2>&1 | tee "$BUILD/$h.log" | grep -E "^#[0-9]+ +(INITED|DONE)|stat::|ERROR|SUMMARY|Test unit written|==[0-9]+==" || true
    end=$(date +%s.%N)
    echo "   wall time $(echo "$end - $start" | bc) s; log $BUILD/$h.log and $BUILD/run/$h/fuzz-0.log; findings in $findings"
    if [ $merge = 1 ]; then
        tmp=$(mktemp -d)
        WEIGHTSMITH_FUZZ=$h "$BIN" -merge=1 "$tmp" "$corpus" "$new" >/dev/null 2>&1
        rm -f "$corpus"/* && cp "$tmp"/* "$corpus"/ && rm -rf "$tmp"
        echo "   corpus: $(ls "$corpus" | wc -l) files, $(du -sk "$corpus" | cut -f1) KB"
    fi
done
