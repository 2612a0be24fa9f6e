"""Writes Tests/CheckpointsTests/Fixtures/sparse_delta.safetensors (a weightsmith sparse delta made
with the official safetensors library and numpy) and sparse_delta_expected.json (the dense
differences it encodes), for SparseDeltaTests.testPythonFixtureReadsBack."""
import json
import os

import numpy as np
from safetensors.numpy import save_file

rng = np.random.default_rng(12)
out = os.path.join(os.path.dirname(__file__), "..", "Tests", "CheckpointsTests", "Fixtures")
tensors, shapes, expected = {}, {}, {}
for name, shape, dtype in [("layers.0.mlp.up_proj.weight", (6, 5), np.float32),
                           ("layers.0.self_attn.q_proj.weight", (4, 4), np.float16),
                           ("lm_head.weight", (3, 7), np.float32)]:
    dense = np.zeros(shape, dtype=np.float32)
    n = int(np.prod(shape))
    keep = np.sort(rng.choice(n, size=max(1, n // 5), replace=False)).astype(np.int64)
    vals = rng.standard_normal(keep.size).astype(dtype)
    dense.reshape(-1)[keep] = vals.astype(np.float32)  # row-major (C-order) linear indices
    tensors[name + ".idx"] = keep
    tensors[name + ".val"] = vals
    shapes[name] = list(shape)
    expected[name] = {"shape": list(shape), "dtype": "F16" if dtype == np.float16 else "F32",
                      "dense": [float(v) for v in dense.reshape(-1)]}
save_file(tensors, os.path.join(out, "sparse_delta.safetensors"),
          metadata={"format": "weightsmith-sparse-delta", "version": "1", "index_order": "row-major",
                    "shapes": json.dumps(shapes)})
with open(os.path.join(out, "sparse_delta_expected.json"), "w") as f:
    json.dump(expected, f, indent=1)
