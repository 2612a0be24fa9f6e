#!/usr/bin/env python3
"""Three tiny Llama checkpoints with different vocabularies, and mergekit's merges of them with
tokenizer settings (union, a model, base; per-token embedding sources; padding), for
Tests/MergingTests/VocabularyUnionParityTests.swift.

fixtures/merge/vocab/base : byte-level BPE, 256 byte tokens + "th", "the" (merges "t h", "th e"),
                            added special "<|endoftext|>" (258); vocab_size 259
fixtures/merge/vocab/ft-a : base's vocabulary + "Ġt", "Ġthe" (260 model tokens), added specials
                            "<|endoftext|>" (260) and "<|im_start|>" (261); vocab_size 262
fixtures/merge/vocab/ft-b : the same byte tokens, then "in", "th", "ing", "the" (other ids than
                            the base's), added specials "<|endoftext|>" (260), "<|im_end|>" (261);
                            vocab_size 264 (two padding rows)
Every model: hidden 16, 1 layer, 2 heads (1 KV head), MLP 32, untied lm_head, float32, random
weights (fine-tunes = base + noise, shared tokens keep the base's row + noise).

fixtures/merge/vocab/mergekit/NAME.yml and NAME/{model.safetensors, config.json, tokenizer.json,
tokenizer_config.json}: what mergekit-yaml wrote for each recipe (paths relative to the repository
root).

Usage (mergekit 0.1.5 in a venv that reuses the installed torch):
  python3 scripts/make_vocab_union_fixtures.py --mergekit /tmp/mkvenv/bin/mergekit-yaml
Run from anywhere; deterministic (fixed seed).
"""
import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
import yaml
from safetensors.torch import save_file

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
HERE = os.path.join("fixtures", "merge", "vocab")
OUT = os.path.join(HERE, "mergekit")
BASE, A, B = (f"fixtures/merge/vocab/{m}" for m in ("base", "ft-a", "ft-b"))
DONOR = "fixtures/merge/vocab/donor"
HIDDEN, MLP = 16, 32


def special(content, id_):
    return {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


def tokenizer(byte_tok, extra, merges, added):
    """byte_tok: fixtures/merge/base's tokenizer.json (256 byte tokens); extra: tokens after them."""
    t = copy.deepcopy(byte_tok)
    vocab = dict(t["model"]["vocab"])
    assert len(vocab) == 256
    for tok in extra:
        vocab[tok] = len(vocab)
    t["model"]["vocab"] = vocab
    t["model"]["merges"] = merges
    t["added_tokens"] = [special(c, len(vocab) + i) for i, c in enumerate(added)]
    return t


def config(vocab_size):
    return {
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 0, "eos_token_id": 0, "head_dim": 8, "hidden_act": "silu", "hidden_size": HIDDEN,
        "initializer_range": 0.02, "intermediate_size": MLP, "max_position_embeddings": 64, "mlp_bias": False,
        "model_type": "llama", "num_attention_heads": 2, "num_hidden_layers": 1, "num_key_value_heads": 1,
        "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": False,
        "torch_dtype": "float32", "use_cache": True, "vocab_size": vocab_size,
    }


def layer_shapes():
    p = "model.layers.0."
    return {
        p + "input_layernorm.weight": (HIDDEN,), p + "post_attention_layernorm.weight": (HIDDEN,),
        p + "self_attn.q_proj.weight": (HIDDEN, HIDDEN), p + "self_attn.k_proj.weight": (8, HIDDEN),
        p + "self_attn.v_proj.weight": (8, HIDDEN), p + "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
        p + "mlp.gate_proj.weight": (MLP, HIDDEN), p + "mlp.up_proj.weight": (MLP, HIDDEN),
        p + "mlp.down_proj.weight": (HIDDEN, MLP), "model.norm.weight": (HIDDEN,),
    }


def write_model(path, tok, vocab_size, tensors):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False, indent=2)
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 64,
                   "clean_up_tokenization_spaces": False, "eos_token": "<|endoftext|>"}, f, indent=2)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config(vocab_size), f, indent=2)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(path, "model.safetensors"),
              metadata={"format": "pt"})


def ids(tok):
    v = dict(tok["model"]["vocab"])
    for a in tok["added_tokens"]:
        v[a["content"]] = a["id"]
    return v


def make_models():
    g = torch.Generator().manual_seed(7)
    with open(os.path.join("fixtures", "merge", "base", "tokenizer.json")) as f:
        byte_tok = json.load(f)
    toks = {
        "base": (tokenizer(byte_tok, ["th", "the"], ["t h", "th e"], ["<|endoftext|>"]), 259),
        "ft-a": (tokenizer(byte_tok, ["th", "the", "Ġt", "Ġthe"], ["t h", "th e", "Ġ t", "Ġ the"],
                           ["<|endoftext|>", "<|im_start|>"]), 262),
        "ft-b": (tokenizer(byte_tok, ["in", "th", "ing", "the"], ["i n", "t h", "in g", "th e"],
                           ["<|endoftext|>", "<|im_end|>"]), 264),
    }
    # One embedding and one head row per token string, shared by the models (a fine-tune
    # perturbs them), so rows of one token agree across models up to the noise.
    strings = sorted(set().union(*(ids(t) for t, _ in toks.values())))
    emb = {s: torch.randn(HIDDEN, generator=g) for s in strings}
    head = {s: torch.randn(HIDDEN, generator=g) for s in strings}
    base_layers = {k: torch.randn(*s, generator=g) * 0.5 for k, s in layer_shapes().items()}
    for name, (tok, vocab_size) in toks.items():
        noise = 0.0 if name == "base" else 0.1
        tensors = {k: v + noise * torch.randn(v.shape, generator=g) for k, v in base_layers.items()}
        e = torch.zeros(vocab_size, HIDDEN)
        h = torch.zeros(vocab_size, HIDDEN)
        for s, i in ids(tok).items():
            e[i] = emb[s] + noise * torch.randn(HIDDEN, generator=g)
            h[i] = head[s] + noise * torch.randn(HIDDEN, generator=g)
        for i in range(len(ids(tok)), vocab_size):  # padding rows
            e[i] = torch.randn(HIDDEN, generator=g)
            h[i] = torch.randn(HIDDEN, generator=g)
        tensors["model.embed_tokens.weight"] = e
        tensors["lm_head.weight"] = h
        write_model(os.path.join(HERE, name), tok, vocab_size, tensors)
    # A tokenizer-only donor (no config.json, no weights): tokens of base, ft-a and ft-b, and
    # "zq", in none of them.
    donor = tokenizer(byte_tok, ["th", "the", "in", "ing", "zq"], ["t h", "th e", "i n", "in g", "z q"],
                      ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    os.makedirs(DONOR, exist_ok=True)
    with open(os.path.join(DONOR, "tokenizer.json"), "w") as f:
        json.dump(donor, f, indent=2)
    with open(os.path.join(DONOR, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 2048,
                   "eos_token": "<|endoftext|>"}, f, indent=2)


TOKENS_BLOCK = f"""tokenizer:
  source: union
  tokens:
    "<|im_start|>":
      source: {{kind: model_token, model: {BASE}, token: "<|endoftext|>"}}
    "<|im_end|>":
      source: {{kind: zero}}
    "the":
      source: {A}
      force: true
    "in":
      source: {{kind: model_token, model: {B}, token_id: 258}}
    "<|brand_new|>":
      source: {{kind: zero}}
    "Ġt":
      source: {A}
  pad_to_multiple_of: 8
"""

RECIPES = {
    # No base model: the first model's tokenizer starts the union; shared tokens missing from
    # one model take the mean of the models that have them.
    "union-linear": f"""merge_method: linear
models:
  - model: {BASE}
    parameters: {{weight: 0.5}}
  - model: {A}
    parameters: {{weight: 0.3}}
  - model: {B}
    parameters: {{weight: 0.2}}
tokenizer_source: union
dtype: float32
""",
    "union-ties": f"""merge_method: ties
base_model: {BASE}
models:
  - model: {A}
    parameters: {{weight: 0.6, density: 0.7}}
  - model: {B}
    parameters: {{weight: 0.4, density: 0.5}}
parameters: {{normalize: true}}
tokenizer_source: union
dtype: float32
""",
    "union-tokens-ties": f"""merge_method: ties
base_model: {BASE}
models:
  - model: {A}
    parameters: {{weight: 0.6, density: 0.7}}
  - model: {B}
    parameters: {{weight: 0.4, density: 0.5}}
{TOKENS_BLOCK}dtype: float32
""",
    "union-tokens-linear": f"""merge_method: linear
base_model: {BASE}
models:
  - model: {BASE}
    parameters: {{weight: 0.4}}
  - model: {A}
    parameters: {{weight: 0.3}}
  - model: {B}
    parameters: {{weight: 0.3}}
{TOKENS_BLOCK}dtype: float32
""",
    "source-model-task-arithmetic": f"""merge_method: task_arithmetic
base_model: {BASE}
models:
  - model: {A}
    parameters: {{weight: 0.5}}
  - model: {B}
    parameters: {{weight: 0.7}}
tokenizer_source: {B}
dtype: float32
""",
    "source-base-padded": f"""merge_method: linear
base_model: {BASE}
models:
  - model: {BASE}
    parameters: {{weight: 0.5}}
  - model: {A}
    parameters: {{weight: 0.25}}
  - model: {B}
    parameters: {{weight: 0.25}}
tokenizer:
  source: base
  pad_to_multiple_of: 16
dtype: float32
""",
    "source-donor-ties": f"""merge_method: ties
base_model: {BASE}
models:
  - model: {A}
    parameters: {{weight: 0.6, density: 0.7}}
  - model: {B}
    parameters: {{weight: 0.4, density: 0.5}}
parameters: {{normalize: true}}
tokenizer_source: {DONOR}
dtype: float32
""",
}

KEEP = ["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"]


def first_model(text):
    doc = yaml.safe_load(text)
    return doc.get("base_model") or doc["models"][0]["model"]


def run(mergekit, name, text):
    """mergekit collects the referenced models in a set, so without a base_model the model whose
    tokenizer starts the union depends on string hashing (PYTHONHASHSEED); weightsmith takes the
    first model, so hash seeds are tried until mergekit did too. (The order in which the union's
    extra tokens get their ids also varies between runs, following a Rust hash map's iteration
    order, whatever the seed: the test compares rows by token.)"""
    path = os.path.join(OUT, name + ".yml")
    with open(path, "w") as f:
        f.write("# Written by scripts/make_vocab_union_fixtures.py; output by mergekit-yaml.\n" + text)
    with open(os.path.join(first_model(text), "tokenizer.json")) as f:
        want = json.load(f)["model"]["vocab"]
    for seed in range(32):
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out")
            r = subprocess.run([mergekit, path, out, "--no-lazy-unpickle"], capture_output=True, text=True, env=env)
            if r.returncode != 0:
                sys.exit(f"mergekit failed on {name}:\n{r.stderr[-3000:]}")
            with open(os.path.join(out, "tokenizer.json")) as f:
                got = json.load(f)["model"]["vocab"]
            if "tokenizer_source: union" in text or "source: union" in text:
                if got != want:
                    continue
            dest = os.path.join(OUT, name)
            if os.path.isdir(dest):
                shutil.rmtree(dest)
            os.makedirs(dest)
            for f in KEEP:
                if os.path.exists(os.path.join(out, f)):
                    shutil.copyfile(os.path.join(out, f), os.path.join(dest, f))
            print(f"{name}: PYTHONHASHSEED={seed}: {sorted(os.listdir(out))}")
            return
    sys.exit(f"mergekit never started {name}'s union from its first model")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mergekit", default="mergekit-yaml", help="the mergekit-yaml executable")
    ap.add_argument("--only", action="append", help="run only this recipe (repeatable)")
    args = ap.parse_args()
    os.chdir(ROOT)
    make_models()
    os.makedirs(OUT, exist_ok=True)
    for name, text in RECIPES.items():
        if args.only and name not in args.only:
            continue
        run(args.mergekit, name, text)


if __name__ == "__main__":
    main()
