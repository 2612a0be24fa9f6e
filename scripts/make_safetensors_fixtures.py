#!/usr/bin/env python3
"""Writes the safetensors parity fixtures with the official `safetensors` package.

Output (Tests/CheckpointsTests/Fixtures/):
  all_dtypes.safetensors        one tensor per dtype safetensors supports, with metadata
  scalar_and_empty.safetensors  a shape-[] scalar, empty tensors of shape [0] and [3, 0]
  numpy_writer.safetensors      written by safetensors.numpy (another code path), no metadata
  sharded/                      a two-shard checkpoint with model.safetensors.index.json,
                                transformers-style tensor names and a config.json
  expected.json                 for every file and tensor: dtype, shape, the stored bytes (hex)
                                and, for numeric dtypes, the Float32 image as uint32 bit patterns
                                (torch's `.to(torch.float32)`), plus each file's metadata

Run from the repository root:  python3 scripts/make_safetensors_fixtures.py
Needs: safetensors, numpy, torch (for BF16, the unsigned types, FP8 and complex64).
"""
import json
import os

import numpy as np
import torch
from safetensors.numpy import save_file as np_save_file
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "CheckpointsTests", "Fixtures")

# Values that exercise rounding, signs, subnormals and the special values of each float type.
FLOAT_VALUES = [0.0, -0.0, 1.0, -2.5, 3.140625, 1e-3, 65504.0, 6.1e-5, 5.96e-8, 1e-40,
                float("inf"), float("-inf"), float("nan"), 1.0 / 3.0, -1234.5678, 3.0e38]


def float_tensor(dtype):
    t = torch.tensor(FLOAT_VALUES, dtype=torch.float64).to(dtype)
    return t.reshape(4, 4)


def int_tensor(dtype, values):
    return torch.tensor(values, dtype=dtype)


def make_all_dtypes():
    g = torch.Generator().manual_seed(0)
    tensors = {
        "f64": float_tensor(torch.float64),
        "f32": float_tensor(torch.float32),
        "f16": float_tensor(torch.float16),
        "bf16": float_tensor(torch.bfloat16),
        "f32_random": torch.randn(3, 5, 7, generator=g, dtype=torch.float32),
        "bf16_random": torch.randn(6, 10, generator=g).to(torch.bfloat16),
        "f16_random": torch.randn(6, 10, generator=g).to(torch.float16),
        "i64": int_tensor(torch.int64, [[0, 1, -1], [2**53 + 1, -(2**62), 2**63 - 1]]),
        "i32": int_tensor(torch.int32, [0, 1, -1, 2**31 - 1, -(2**31), 16777217]),
        "i16": int_tensor(torch.int16, [0, 1, -1, 32767, -32768]),
        "i8": int_tensor(torch.int8, [[0, 1], [-1, 127], [-128, 5]]),
        "u8": int_tensor(torch.uint8, [0, 1, 128, 255]),
        "bool": torch.tensor([[True, False, True], [False, False, True]]),
        "u16": int_tensor(torch.uint16, [0, 1, 65535, 40000]),
        "u32": int_tensor(torch.uint32, [0, 1, 4294967295, 16777217]),
        "u64": int_tensor(torch.uint64, [0, 1, 2**64 - 1, 2**40 + 3]),
        "f8_e4m3": torch.tensor([0.0, 1.0, -2.0, 448.0, 0.0625, -0.5], dtype=torch.float32).to(torch.float8_e4m3fn),
        "f8_e5m2": torch.tensor([0.0, 1.0, -2.0, 57344.0, 0.0625, -0.5], dtype=torch.float32).to(torch.float8_e5m2),
        "f8_e4m3fnuz": torch.tensor([0.0, 1.0, -2.0, 0.5], dtype=torch.float32).to(torch.float8_e4m3fnuz),
        "f8_e5m2fnuz": torch.tensor([0.0, 1.0, -2.0, 0.5], dtype=torch.float32).to(torch.float8_e5m2fnuz),
        "f8_e8m0": torch.tensor([1.0, 2.0, 0.5, 1024.0], dtype=torch.float32).to(torch.float8_e8m0fnu),
        "c64": torch.tensor([1 + 2j, -0.5 + 0j, 0 - 3j], dtype=torch.complex64),
    }
    metadata = {"format": "pt", "producer": "scripts/make_safetensors_fixtures.py", "unicode": "d\u00e9j\u00e0 vu \u2713"}
    path = os.path.join(OUT, "all_dtypes.safetensors")
    save_file(tensors, path, metadata=metadata)
    return path, tensors, metadata


def make_scalar_and_empty():
    tensors = {
        "scalar": torch.tensor(2.75, dtype=torch.float32),
        "empty": torch.zeros(0, dtype=torch.float32),
        "empty_2d": torch.zeros(3, 0, dtype=torch.bfloat16),
        "scalar_i64": torch.tensor(-7, dtype=torch.int64),
    }
    path = os.path.join(OUT, "scalar_and_empty.safetensors")
    save_file(tensors, path, metadata={"format": "pt"})
    return path, tensors, {"format": "pt"}


def make_numpy_file():
    arrays = {
        "weight": np.arange(12, dtype=np.float32).reshape(3, 4) / 8.0,
        "bias": np.array([-1.5, 0.25, 1e30], dtype=np.float64),
        "ids": np.array([[1, 2], [3, 4]], dtype=np.int32),
    }
    path = os.path.join(OUT, "numpy_writer.safetensors")
    np_save_file(arrays, path)
    return path, {k: torch.from_numpy(v) for k, v in arrays.items()}, {}


def make_sharded():
    d = os.path.join(OUT, "sharded")
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(1)
    hidden, inter, vocab = 8, 16, 32
    shard1 = {
        "model.embed_tokens.weight": torch.randn(vocab, hidden, generator=g).to(torch.bfloat16),
        "model.layers.0.input_layernorm.weight": torch.ones(hidden, dtype=torch.bfloat16),
        "model.layers.0.self_attn.q_proj.weight": torch.randn(hidden, hidden, generator=g).to(torch.bfloat16),
        "model.layers.0.self_attn.k_proj.weight": torch.randn(hidden, hidden, generator=g).to(torch.bfloat16),
    }
    shard2 = {
        "model.layers.0.self_attn.v_proj.weight": torch.randn(hidden, hidden, generator=g).to(torch.bfloat16),
        "model.layers.0.self_attn.o_proj.weight": torch.randn(hidden, hidden, generator=g).to(torch.bfloat16),
        "model.layers.0.mlp.gate_proj.weight": torch.randn(inter, hidden, generator=g).to(torch.bfloat16),
        "model.layers.0.mlp.up_proj.weight": torch.randn(inter, hidden, generator=g).to(torch.bfloat16),
        "model.layers.0.mlp.down_proj.weight": torch.randn(hidden, inter, generator=g).to(torch.bfloat16),
        "model.layers.0.post_attention_layernorm.weight": torch.ones(hidden, dtype=torch.bfloat16),
        "model.norm.weight": torch.ones(hidden, dtype=torch.bfloat16),
    }
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    out = []
    weight_map = {}
    total = 0
    for name, tensors in zip(names, [shard1, shard2]):
        path = os.path.join(d, name)
        save_file(tensors, path, metadata={"format": "pt"})
        out.append((path, tensors, {"format": "pt"}))
        for k, v in tensors.items():
            weight_map[k] = name
            total += v.numel() * v.element_size()
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
              "intermediate_size": inter, "num_hidden_layers": 1, "vocab_size": vocab, "torch_dtype": "bfloat16"}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"model_max_length": 128}, f, indent=2)
        f.write("\n")
    return out


DTYPE_NAMES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL", torch.uint16: "U16", torch.uint32: "U32", torch.uint64: "U64",
    torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2", torch.float8_e4m3fnuz: "F8_E4M3FNUZ",
    torch.float8_e5m2fnuz: "F8_E5M2FNUZ", torch.float8_e8m0fnu: "F8_E8M0", torch.complex64: "C64",
}
# Listed and readable as bytes, but with no Float32 conversion in weightsmith.
NOT_CONVERTIBLE = {torch.float8_e4m3fn, torch.float8_e5m2, torch.float8_e4m3fnuz, torch.float8_e5m2fnuz,
                   torch.float8_e8m0fnu, torch.complex64}


def describe(tensors):
    out = {}
    for name, t in tensors.items():
        t = t.contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        entry = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "raw_hex": raw.hex()}
        if t.dtype not in NOT_CONVERTIBLE:
            if t.dtype in (torch.uint32, torch.uint64):
                # torch cannot convert these to float32 on CPU in every version: go through Python ints.
                f32 = np.array([float(int(x)) for x in t.reshape(-1).tolist()], dtype=np.float64).astype(np.float32)
            else:
                f32 = t.to(torch.float32).reshape(-1).numpy()
            entry["f32_bits"] = [int(b) for b in f32.view(np.uint32)]
        out[name] = entry
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    files = [make_all_dtypes(), make_scalar_and_empty(), make_numpy_file()] + make_sharded()
    expected = {}
    for path, tensors, metadata in files:
        rel = os.path.relpath(path, OUT)
        expected[rel] = {"metadata": metadata, "tensors": describe(tensors)}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote", len(files), "files to", OUT)


if __name__ == "__main__":
    main()
