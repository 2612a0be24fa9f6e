#!/usr/bin/env python3
"""Writes the GGUF test fixtures of Tests/CheckpointsTests/Fixtures/gguf/ with the PyPI `gguf`
package (GGUFWriter + gguf.quants), and the expected Float32 values from gguf's own
dequantisation. Deterministic (seeded). Run from the repository root:

    python3 scripts/make_gguf_fixtures.py

Files:
  types.gguf      v3, every metadata value type, one tensor per supported ggml type
  expected.gguf   F32 tensors with gguf.quants.dequantize of each tensor of types.gguf
  v2.gguf         types.gguf with the version field set to 2 (v2 and v3 share the layout)
  align64.gguf    general.alignment = 64
  unsupported_q2k.gguf  a Q2_K tensor (known layout, no dequantiser): opens, tensor() refuses
  llama_qk.gguf   Q and K weights permuted as llama.cpp's converter does; expected_qk.gguf the originals
  hostile/*.gguf  malformed files that must be rejected with a clear error
"""
import os, struct, shutil
import numpy as np
import gguf
from gguf import GGUFWriter, GGMLQuantizationType as Q
from gguf.quants import quantize, dequantize

OUT = "Tests/CheckpointsTests/Fixtures/gguf"
rng = np.random.default_rng(1234)


def fresh(path):
    if os.path.exists(path):
        os.remove(path)
    return path


def metadata(w):
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 1.5)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "héllo wörld ✓")
    w.add_uint64("test.u64", 18000000000000000000)
    w.add_int64("test.i64", -9000000000000000000)
    w.add_float64("test.f64", 3.141592653589793)
    w.add_array("test.array_i32", [1, -2, 3])
    w.add_array("test.array_str", ["a", "bc", ""])
    w.add_array("test.array_f32", [0.5, 2.0])


def qtensor(w, name, data, qtype):
    q = quantize(data, qtype)
    w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)
    return dequantize(q, qtype).astype(np.float32)


def kquant_blocks(qtype, n_blocks):
    """Random K-quant blocks (gguf.quants has no K-quant quantiser) with finite half scales."""
    size = gguf.GGML_QUANT_SIZES[qtype][1]
    b = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    scales = (rng.standard_normal((n_blocks, 2)) * 0.01).astype(np.float16).view(np.uint8)
    if qtype == Q.Q6_K:
        b[:, 208:210] = scales[:, 0:2]   # d is the last field
    else:
        b[:, 0:4] = scales               # d, dmin
    return b


def write_types():
    w = GGUFWriter(fresh(f"{OUT}/types.gguf"), "llama")
    metadata(w)
    expected = {}
    f = rng.standard_normal((3, 64)).astype(np.float32)
    w.add_tensor("f32", f)
    expected["f32"] = f
    h = rng.standard_normal((2, 32)).astype(np.float16)
    w.add_tensor("f16", h)
    expected["f16"] = h.astype(np.float32)
    expected["bf16"] = qtensor(w, "bf16", rng.standard_normal((2, 32)).astype(np.float32), Q.BF16)
    for qt in (Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1):
        data = rng.standard_normal((4, 64)).astype(np.float32) * 0.7
        expected[qt.name.lower()] = qtensor(w, qt.name.lower(), data, qt)
    for qt in (Q.Q4_K, Q.Q5_K, Q.Q6_K):
        blocks = kquant_blocks(qt, 4)           # 2 rows of 512 elements
        byte_rows = blocks.reshape(2, -1)
        w.add_tensor(qt.name.lower(), byte_rows, raw_shape=byte_rows.shape, raw_dtype=qt)
        expected[qt.name.lower()] = dequantize(byte_rows, qt).astype(np.float32)
    w.add_tensor("vector3d", np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    expected["vector3d"] = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    finish(w)
    e = GGUFWriter(fresh(f"{OUT}/expected.gguf"), "llama")
    for k, v in expected.items():
        e.add_tensor(k, np.ascontiguousarray(v, dtype=np.float32))
    finish(e)


def finish(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llama_permute(weights, n_head):
    # As llama.cpp's convert_hf_to_gguf.py LlamaModel.permute.
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def write_qk():
    n_head, n_kv, head_dim, hidden = 4, 2, 8, 32
    q = rng.standard_normal((n_head * head_dim, hidden)).astype(np.float32)
    k = rng.standard_normal((n_kv * head_dim, hidden)).astype(np.float32)
    qb = rng.standard_normal((n_head * head_dim,)).astype(np.float32)
    w = GGUFWriter(fresh(f"{OUT}/llama_qk.gguf"), "llama")
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_tensor("blk.0.attn_q.weight", llama_permute(q, n_head))
    w.add_tensor("blk.0.attn_k.weight", llama_permute(k, n_kv))
    w.add_tensor("blk.0.attn_q.bias", llama_permute(qb, n_head))
    finish(w)
    e = GGUFWriter(fresh(f"{OUT}/expected_qk.gguf"), "llama")
    e.add_tensor("model.layers.0.self_attn.q_proj.weight", q)
    e.add_tensor("model.layers.0.self_attn.k_proj.weight", k)
    e.add_tensor("model.layers.0.self_attn.q_proj.bias", qb)
    finish(e)


def write_unsupported():
    """A valid file holding a Q2_K tensor: it opens (the layout is known) but dequantising it is refused."""
    w = GGUFWriter(fresh(f"{OUT}/unsupported_q2k.gguf"), "llama")
    blocks = rng.integers(0, 256, size=(1, gguf.GGML_QUANT_SIZES[Q.Q2_K][1]), dtype=np.uint8)
    w.add_tensor("q2_k", blocks, raw_shape=blocks.shape, raw_dtype=Q.Q2_K)
    finish(w)


def write_align64():
    w = GGUFWriter(fresh(f"{OUT}/align64.gguf"), "llama")
    w.data_alignment = 64
    w.add_custom_alignment(64)
    w.add_tensor("a", np.arange(5, dtype=np.float32))
    w.add_tensor("b", np.arange(7, dtype=np.float32) * 2)
    finish(w)


# ---- hostile corpus: hand-built bytes ----

def s(text):
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def header(version=3, n_tensors=0, n_kv=0):
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)


def tinfo(name, dims, ggml_type, offset):
    return s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", ggml_type, offset)


def pad(b, a=32):
    return b + b"\0" * ((-len(b)) % a)


def write_hostile():
    d = f"{OUT}/hostile"
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    files = {
        "empty": b"",
        "bad_magic": b"GGML" + struct.pack("<IQQ", 3, 0, 0),
        "version1": header(version=1),
        "version4": header(version=4),
        "truncated_header": b"GGUF" + struct.pack("<I", 3) + b"\0\0\0",
        "kv_count_beyond_file": header(n_kv=1 << 40),
        "tensor_count_beyond_file": header(n_tensors=1 << 40),
        "string_length_beyond_file": header(n_kv=1) + struct.pack("<Q", 1 << 50) + b"key",
        "array_count_beyond_file": header(n_kv=1) + s("k") + struct.pack("<IIQ", 9, 4, 1 << 40),
        "unknown_value_type": header(n_kv=1) + s("k") + struct.pack("<I", 99) + b"\0" * 8,
        "unknown_array_type": header(n_kv=1) + s("k") + struct.pack("<IIQ", 9, 77, 1),
        "invalid_utf8_key": header(n_kv=1) + struct.pack("<Q", 2) + b"\xff\xfe" + struct.pack("<IB", 0, 1),
        "bad_bool": header(n_kv=1) + s("k") + struct.pack("<IB", 7, 5),
        "duplicate_key": header(n_kv=2) + s("k") + struct.pack("<IB", 0, 1) + s("k") + struct.pack("<IB", 0, 2),
        "bad_alignment": header(n_kv=1) + s("general.alignment") + struct.pack("<II", 4, 3),
        "unknown_tensor_type": pad(header(n_tensors=1) + tinfo("t", [4], 99, 0)) + b"\0" * 32,
        "too_many_dims": pad(header(n_tensors=1) + tinfo("t", [1, 1, 1, 1, 1], 0, 0)) + b"\0" * 32,
        "block_size_mismatch": pad(header(n_tensors=1) + tinfo("t", [33], 8, 0)) + b"\0" * 64,
        "misaligned_offset": pad(header(n_tensors=1) + tinfo("t", [4], 0, 4)) + b"\0" * 64,
        "data_beyond_file": pad(header(n_tensors=1) + tinfo("t", [64], 0, 0)) + b"\0" * 16,
        "offset_beyond_file": pad(header(n_tensors=1) + tinfo("t", [1], 0, 1 << 40)) + b"\0" * 16,
        "overlapping_tensors": pad(header(n_tensors=2) + tinfo("a", [16], 0, 0) + tinfo("b", [16], 0, 32)) + b"\0" * 128,
        "duplicate_tensor": pad(header(n_tensors=2) + tinfo("a", [8], 0, 0) + tinfo("a", [8], 0, 32)) + b"\0" * 64,
        "huge_dims": pad(header(n_tensors=1) + tinfo("t", [1 << 31, 1 << 31, 1 << 31], 0, 0)) + b"\0" * 32,
    }
    for name, data in files.items():
        with open(f"{d}/{name}.gguf", "wb") as f:
            f.write(data)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    write_types()
    with open(f"{OUT}/types.gguf", "rb") as f:
        data = bytearray(f.read())
    data[4:8] = struct.pack("<I", 2)
    with open(f"{OUT}/v2.gguf", "wb") as f:
        f.write(data)
    write_qk()
    write_align64()
    write_unsupported()
    write_hostile()
    print("wrote", sorted(os.listdir(OUT)))
