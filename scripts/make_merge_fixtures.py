#!/usr/bin/env python3
"""Small Llama-architecture checkpoints for the merge demo, notebook and end-to-end tests.

fixtures/merge/base  : hidden 64, 2 layers, 4 heads (2 KV heads), MLP 128, byte vocabulary 256,
                       pre-trained briefly on lowercase word text (seed 0)
fixtures/merge/ft-a  : base fine-tuned on copying ("abc|abc")
fixtures/merge/ft-b  : base fine-tuned on two-digit addition ("12+34=46")
fixtures/merge/ft-c  : base fine-tuned on upper-casing ("cat>CAT")
fixtures/merge/eval  : 40 held-out prompt/completion pairs per task (JSONL, for `weightsmith eval`)

Each folder: model.safetensors (float32, ~430 kB), config.json, tokenizer.json (byte-level,
one token per byte, no merges), tokenizer_config.json. Deterministic (fixed seeds, one thread).
Run: python3 scripts/make_merge_fixtures.py
"""
import json
import os
import random
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

torch.set_num_threads(1)
ROOT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "merge")
WORDS = ("the of and to in is was for on that with as by at from his her they be this are which one "
         "model merge weight layer token cat dog sun tree river stone light water small large").split()


def config():
    return LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                       rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                       bos_token_id=2, eos_token_id=3, pad_token_id=0)


def encode(s):
    return list(s.encode("utf-8"))


def batch(gen, rng, n=32, length=32):
    rows = []
    for _ in range(n):
        ids = []
        while len(ids) < length:
            ids += encode(gen(rng)) + [10]
        rows.append(ids[:length])
    return torch.tensor(rows)


def text(rng):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))


def copy_task(rng):
    w = "".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 5)))
    return f"{w}|{w}"


def add_task(rng):
    a, b = rng.randint(10, 49), rng.randint(10, 49)
    return f"{a}+{b}={a + b}"


def upper_task(rng):
    w = rng.choice(WORDS)
    return f"{w}>{w.upper()}"


def train(model, gen, steps, seed, lr):
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for step in range(steps):
        x = batch(gen, rng)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach())


def tokenizer_json():
    # Byte-level: token id = byte value, printable via the GPT-2 byte-to-unicode table.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    vocab = {chr(c): b for b, c in zip(bs, cs)}
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": dict(sorted(vocab.items(), key=lambda kv: kv[1])), "merges": []},
    }


def save(model, name, loss):
    d = os.path.join(ROOT, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(), f, ensure_ascii=False)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 64, "clean_up_tokenization_spaces": False}, f, indent=2)
    for extra in ("generation_config.json",):
        p = os.path.join(d, extra)
        if os.path.exists(p):
            os.remove(p)
    print(f"{name}: final loss {loss:.3f}")


def write_eval_sets():
    """fixtures/merge/eval/{copy,add,upper}.jsonl: 40 held-out prompt/completion pairs per task."""
    d = os.path.join(ROOT, "eval")
    os.makedirs(d, exist_ok=True)
    for name, gen, sep, seed in (("copy", copy_task, "|", 101), ("add", add_task, "=", 102), ("upper", upper_task, ">", 103)):
        rng = random.Random(seed)
        with open(os.path.join(d, f"{name}.jsonl"), "w") as f:
            for _ in range(40):
                s = gen(rng)
                i = s.index(sep) + 1
                f.write(json.dumps({"prompt": s[:i], "completion": s[i:]}) + "\n")


def main():
    write_eval_sets()
    if "--eval-only" in sys.argv:
        return
    torch.manual_seed(0)
    base = LlamaForCausalLM(config())
    loss = train(base, text, steps=150, seed=0, lr=3e-3)
    save(base, "base", loss)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    for name, gen, seed in (("ft-a", copy_task, 1), ("ft-b", add_task, 2), ("ft-c", upper_task, 3)):
        m = LlamaForCausalLM(config())
        m.load_state_dict(state)
        loss = train(m, gen, steps=120, seed=seed, lr=2e-3)
        save(m, name, loss)


if __name__ == "__main__":
    main()
