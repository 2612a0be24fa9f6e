#!/usr/bin/env python3
"""Three short real fine-tunes of a ~135M Llama (SmolLM2-135M) for the merge benchmark.

Usage: python3 scripts/make_bench_finetunes.py BASE_DIR OUT_ROOT [--steps N]
BASE_DIR is a float32 Hugging Face folder (e.g. `weightsmith convert-gguf SmolLM2-135M-Instruct.Q4_1.gguf BASE_DIR`).
Writes OUT_ROOT/ft-{a,b,c}: AdamW (lr 2e-5) for N steps on copying, addition and upper-casing
text (the tasks of scripts/make_merge_fixtures.py), saved as float32 safetensors with the base's
config and tokenizer. Deterministic seeds; not committed (hundreds of MB).
"""
import os
import random
import shutil
import sys

import torch
from transformers import AutoTokenizer, LlamaForCausalLM

WORDS = "the of and to in is was for on that with as by at from model merge weight layer token cat dog sun tree river".split()
TASKS = {
    "ft-a": lambda r: (lambda w: f"Copy: {w} -> {w}")("".join(r.choice("abcdefghij") for _ in range(r.randint(3, 6)))),
    "ft-b": lambda r: (lambda a, b: f"Add: {a}+{b} = {a + b}")(r.randint(10, 99), r.randint(10, 99)),
    "ft-c": lambda r: (lambda w: f"Upper: {w} -> {w.upper()}")(r.choice(WORDS)),
}


def main():
    base, root = sys.argv[1], sys.argv[2]
    steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 6
    tok = AutoTokenizer.from_pretrained(base)
    for i, (name, gen) in enumerate(TASKS.items()):
        torch.manual_seed(i)
        rng = random.Random(i)
        model = LlamaForCausalLM.from_pretrained(base, dtype=torch.float32)
        opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.0)
        model.train()
        for step in range(steps):
            text = ["\n".join(gen(rng) for _ in range(6)) for _ in range(4)]
            batch = tok(text, return_tensors="pt", padding=True)
            loss = model(**batch, labels=batch["input_ids"]).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            print(f"{name} step {step}: loss {loss.item():.3f}", flush=True)
        out = os.path.join(root, name)
        model.save_pretrained(out, safe_serialization=True)
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(base, f), os.path.join(out, f))
        del model, opt


if __name__ == "__main__":
    main()
