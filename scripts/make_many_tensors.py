#!/usr/bin/env python3
"""Writes a valid safetensors file whose header lists N tensors (default 1,000,000): F32 tensors
of shape [1], named like a model's (`model.layers.{i // 1000}.t{i % 1000}`), in a shuffled header
order (offsets still tile the data section). Header ~70 MB for 1M tensors, data 4 MB.
Standard library only. For the header-parsing benchmark in BENCHMARKS.md (issue 13 item 10):

    python3 scripts/make_many_tensors.py /tmp/many.safetensors [--tensors N] [--seed S]
"""
import argparse
import json
import random
import struct

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--tensors", type=int, default=1_000_000)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()

names = [f"model.layers.{i // 1000}.t{i % 1000}" for i in range(a.tensors)]
order = list(range(a.tensors))
random.Random(a.seed).shuffle(order)
header = {"__metadata__": {"format": "pt", "tensors": str(a.tensors)}}
for i in order:
    header[names[i]] = {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * (-len(text) % 8)
with open(a.out, "wb") as f:
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    f.write(struct.pack(f"<{a.tensors}f", *(float(i % 251) for i in range(a.tensors))))
print(f"{a.out}: {a.tensors} tensors, header {len(text)} bytes")
