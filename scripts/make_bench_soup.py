#!/usr/bin/env python3
"""Five soup ingredients of SmolLM2-135M for the soup benchmark, as in Model soups (Wortsman et
al. 2022, §2): one task, several fine-tuning runs with different learning rates and seeds.

Usage: python3 scripts/make_bench_soup.py BASE_DIR OUT_ROOT [--steps N]
BASE_DIR: a float32 Hugging Face folder with tokenizer.json (`weightsmith convert-gguf
SmolLM2-135M-Instruct.Q4_1.gguf BASE_DIR`). Writes OUT_ROOT/ing-{0..4} (AdamW, batch 4, N steps on
arithmetic and copying text, learning rates 1e-5 ... 1e-4, seeds 0 ... 4, float32 safetensors
with the base's config and tokenizer) and OUT_ROOT/heldout.jsonl (200 prompt/completion pairs
of the same tasks, unseen in training). Deterministic; not committed (hundreds of MB).
"""
import json
import os
import random
import shutil
import sys

import torch
from transformers import AutoTokenizer, LlamaForCausalLM


def example(r):
    if r.random() < 0.5:
        a, b = r.randint(10, 99), r.randint(10, 99)
        return f"Add: {a}+{b} =", f" {a + b}"
    w = "".join(r.choice("abcdefghij") for _ in range(r.randint(3, 6)))
    return f"Copy: {w} ->", f" {w}"


def main():
    base, root = sys.argv[1], sys.argv[2]
    steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 8
    os.makedirs(root, exist_ok=True)
    held = random.Random(1000)
    with open(os.path.join(root, "heldout.jsonl"), "w") as f:
        for _ in range(200):
            p, c = example(held)
            f.write(json.dumps({"prompt": p, "completion": c}) + "\n")
    tok = AutoTokenizer.from_pretrained(base)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    for i, lr in enumerate([1e-5, 2e-5, 3e-5, 5e-5, 1e-4]):
        torch.manual_seed(i)
        rng = random.Random(i)
        model = LlamaForCausalLM.from_pretrained(base, dtype=torch.float32)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        model.train()
        for step in range(steps):
            text = ["\n".join("".join(example(rng)) for _ in range(6)) for _ in range(4)]
            batch = tok(text, return_tensors="pt", padding=True)
            labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
            loss = model(**batch, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            print(f"ing-{i} (lr {lr}) step {step}: loss {loss.item():.3f}", flush=True)
        out = os.path.join(root, f"ing-{i}")
        model.save_pretrained(out, safe_serialization=True)
        for f in ("tokenizer.json", "tokenizer_config.json"):
            if os.path.exists(os.path.join(base, f)):
                shutil.copy(os.path.join(base, f), os.path.join(out, f))
        del model, opt


if __name__ == "__main__":
    main()
