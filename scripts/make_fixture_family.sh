#!/usr/bin/env bash
# Builds the embedded fixture family under fixtures/family/ with `weightsmith finetune`
# (deterministic: fixed seeds, one BLAS thread). Needs python3 with torch, transformers and
# tokenizers for the data, tokenizer and random initial weights (scripts/make_family_data.py),
# and a release build:  swift build -c release
#
#   base/                 Llama-architecture model (0.8M parameters, vocab 512) pre-trained on
#                         data/corpus.txt (templated facts: capitals, continents, professions)
#   capital-full/         full fine-tune on data/capital-train.jsonl     (Q/A about capitals)
#   profession-full/      full fine-tune on data/profession-train.jsonl  (person -> job)
#   continent-full/       full fine-tune on data/continent-train.jsonl   (country -> continent)
#   capital-lora/         PEFT LoRA (r 8, alpha 16, all linear layers) on the capital task
#   logs/                 the training logs (timings vary; the weights do not)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-fixtures/family}
WS=${WEIGHTSMITH:-.build/release/weightsmith}
export OPENBLAS_NUM_THREADS=1
rm -rf "$OUT"
python3 scripts/make_family_data.py "$OUT" 2>/dev/null
mkdir -p "$OUT/logs"
$WS finetune "$OUT/init" "$OUT/data/corpus.txt" --mode full --steps ${PRETRAIN_STEPS:-400} --batch-size 16 --max-length 64 \
    --lr 3e-3 --warmup 20 --min-lr-ratio 0.1 --weight-decay 0.01 --eval-every 100 --log-every 20 --seed 1 -o "$OUT/base" | tee "$OUT/logs/base.txt"
rm -rf "$OUT/init"
for task in capital profession continent; do
    $WS finetune "$OUT/base" "$OUT/data/$task-train.jsonl" --eval-data "$OUT/data/$task-heldout.jsonl" --mode full \
        --steps 40 --batch-size 8 --lr 3e-4 --warmup 4 --seed 2 --eval-every 10 -o "$OUT/$task-full" | tee "$OUT/logs/$task-full.txt"
done
$WS finetune "$OUT/base" "$OUT/data/capital-train.jsonl" --eval-data "$OUT/data/capital-heldout.jsonl" --mode lora --rank 8 --alpha 16 \
    --steps 40 --batch-size 8 --lr 2e-3 --warmup 4 --seed 2 --eval-every 10 -o "$OUT/capital-lora" | tee "$OUT/logs/capital-lora.txt"
du -sh "$OUT"
