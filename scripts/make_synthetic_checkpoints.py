#!/usr/bin/env python3
"""Synthetic checkpoints of real model shapes, in bfloat16, sharded as Hugging Face writes them.

For merge benchmarks at real sizes without downloading models: a base and N fine-tunes of the
TinyLlama-1.1B or Llama-2-7B / Mistral-7B layout (every tensor name and shape of the real model,
untied lm_head), values with a realistic spread (weights ~ N(0, 0.02²), norms 1), each fine-tune
the base plus a small task vector (~ N(0, 0.001²) on every element, i.e. 5% of the weights' scale).

Streaming: one tensor in memory at a time (the base's values are regenerated from a per-tensor
seed for every fine-tune instead of read back), so generating a 7B model needs well under 1 GB.
Output per model: model-0000k-of-0000n.safetensors (BF16, shards up to --shard-size bytes),
model.safetensors.index.json and config.json.

Usage: python3 scripts/make_synthetic_checkpoints.py --shape tinyllama --fine-tunes 3 --out DIR
Writes DIR/base, DIR/ft-1 ... DIR/ft-N. Deterministic (--seed).

--zeros writes the same headers with the data left as holes (sparse files that read as zeros, in
seconds and without the disk space): for checking plans and peak memory at sizes the disk cannot
hold, where the values do not matter. Every model is then the same all-zero model, so merged
values are meaningless and methods that normalise (slerp, karcher, ...) see zero vectors.
"""
import argparse
import hashlib
import json
import os
import struct
import sys

import numpy as np

SHAPES = {
    # hidden, intermediate, layers, heads, kv heads, vocab
    "tinyllama": dict(hidden=2048, inter=5632, layers=22, heads=32, kv=4, vocab=32000, rope=10000.0, ctx=2048),
    "llama2-7b": dict(hidden=4096, inter=11008, layers=32, heads=32, kv=32, vocab=32000, rope=10000.0, ctx=4096),
    "mistral-7b": dict(hidden=4096, inter=14336, layers=32, heads=32, kv=8, vocab=32000, rope=1000000.0, ctx=32768),
}


def tensors(s):
    h, i, hd = s["hidden"], s["inter"], s["hidden"] // s["heads"]
    kvd = s["kv"] * hd
    out = [("model.embed_tokens.weight", (s["vocab"], h))]
    for l in range(s["layers"]):
        p = f"model.layers.{l}."
        out += [(p + "input_layernorm.weight", (h,)),
                (p + "self_attn.q_proj.weight", (h, h)), (p + "self_attn.k_proj.weight", (kvd, h)),
                (p + "self_attn.v_proj.weight", (kvd, h)), (p + "self_attn.o_proj.weight", (h, h)),
                (p + "post_attention_layernorm.weight", (h,)),
                (p + "mlp.gate_proj.weight", (i, h)), (p + "mlp.up_proj.weight", (i, h)), (p + "mlp.down_proj.weight", (h, i))]
    out += [("model.norm.weight", (h,)), ("lm_head.weight", (s["vocab"], h))]
    return out


def seed_of(name, seed, model):
    return int.from_bytes(hashlib.sha256(f"{seed}/{model}/{name}".encode()).digest()[:8], "little")


def values(name, shape, seed, model):
    """Float32 values of tensor `name` for `model` (0 = base, k = fine-tune k)."""
    n = int(np.prod(shape))
    if name.endswith("norm.weight"):
        base = np.ones(n, dtype=np.float32)
    else:
        base = np.random.default_rng(seed_of(name, seed, 0)).standard_normal(n, dtype=np.float32) * np.float32(0.02)
    if model == 0:
        return base
    return base + np.random.default_rng(seed_of(name, seed, model)).standard_normal(n, dtype=np.float32) * np.float32(0.001)


def bf16_bytes(x):
    """Round-to-nearest-even float32 -> bfloat16, as bytes."""
    u = x.view(np.uint32)
    u = u + (np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1)))
    return (u >> 16).astype(np.uint16).tobytes()


def write_model(folder, s, seed, model, shard_bytes, zeros=False):
    os.makedirs(folder, exist_ok=True)
    ts = tensors(s)
    shards, cur, size = [], [], 0
    for name, shape in ts:
        b = 2 * int(np.prod(shape))
        if cur and size + b > shard_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append((name, shape))
        size += b
    shards.append(cur)
    weight_map, total = {}, 0
    for k, shard in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        header, off = {"__metadata__": {"format": "pt"}}, 0
        for name, shape in shard:
            b = 2 * int(np.prod(shape))
            header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + b]}
            off += b
            weight_map[name] = fname
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        tmp = os.path.join(folder, "." + fname + ".tmp")
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(h)))
            f.write(h)
            if zeros:
                f.truncate(8 + len(h) + off)
            else:
                for name, shape in shard:
                    f.write(bf16_bytes(values(name, shape, seed, model)))
        os.replace(tmp, os.path.join(folder, fname))
        total += off
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": s["hidden"],
        "intermediate_size": s["inter"], "num_hidden_layers": s["layers"], "num_attention_heads": s["heads"],
        "num_key_value_heads": s["kv"], "head_dim": s["hidden"] // s["heads"], "hidden_act": "silu",
        "max_position_embeddings": s["ctx"], "rms_norm_eps": 1e-5, "rope_theta": s["rope"], "vocab_size": s["vocab"],
        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 2,
    }
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    return total, len(shards)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tinyllama")
    ap.add_argument("--fine-tunes", type=int, default=3)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shard-size", type=float, default=2.0, help="GB per shard (10^9 bytes; default 2)")
    ap.add_argument("--zeros", action="store_true", help="headers only, data as holes (all-zero sparse files)")
    args = ap.parse_args()
    if os.path.exists(args.out) and os.listdir(args.out):
        sys.exit(f"{args.out} exists and is not empty")
    s = SHAPES[args.shape]
    for model in range(args.fine_tunes + 1):
        name = "base" if model == 0 else f"ft-{model}"
        total, n = write_model(os.path.join(args.out, name), s, args.seed, model, int(args.shard_size * 1e9), args.zeros)
        print(f"{name}: {total / 1e9:.2f} GB in {n} shards", flush=True)


if __name__ == "__main__":
    main()
