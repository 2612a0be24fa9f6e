"""Writes Tests/CheckpointsTests/Fixtures/lt_sft/pytorch_diff.bin in the on-disk format of LT-SFT
(Ansell et al. 2022; the composable-sft package's SFT.save): torch.save of
{'diffs': {name: {'size': torch.Size, 'index_steps': [...], 'values': tensor}}, 'abs': {name: tensor}},
where the linear index of an entry is first-dimension-fastest (idx = Σ_d coord_d · Π_{e<d} size_e),
sorted ascending and delta-coded (the first step is the first index, as a numpy int64 like the
reference's, the others Python ints). Also writes expected.json: every tensor dense, row-major,
for SparseDeltaTests.testLTSFTPickleConverts. Needs torch (CPU) and numpy; fixtures only."""
import json
import os

import numpy as np
import torch

rng = np.random.default_rng(7)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "CheckpointsTests", "Fixtures", "lt_sft")
os.makedirs(out, exist_ok=True)


def encode(dense):
    """The LT-SFT encoding of the nonzero entries of a dense tensor."""
    size = dense.shape
    flat_f = dense.numpy().reshape(-1, order="F")  # first dimension fastest
    idx = np.nonzero(flat_f)[0].astype(np.int64)
    steps = np.diff(idx).tolist()
    index_steps = ([idx[0]] + steps) if len(idx) > 0 else []
    return {"size": size, "index_steps": index_steps, "values": torch.from_numpy(flat_f[idx].copy())}


diffs, expected = {}, {}
for name, shape, dtype in [("bert.encoder.layer.0.attention.self.query.weight", (5, 4), torch.float32),
                           ("bert.encoder.layer.0.output.dense.bias", (6,), torch.float32),
                           ("bert.encoder.layer.1.intermediate.dense.weight", (3, 2, 4), torch.float16)]:
    dense = torch.zeros(shape, dtype=dtype)
    n = int(np.prod(shape))
    keep = rng.choice(n, size=max(1, n // 4), replace=False)
    dense.view(-1)[torch.from_numpy(keep)] = torch.from_numpy(rng.standard_normal(keep.size).astype(np.float32)).to(dtype)
    diffs[name] = encode(dense)
    expected[name] = {"kind": "diff", "shape": list(shape), "dense": [float(v) for v in dense.float().reshape(-1)]}
head = torch.from_numpy(rng.standard_normal((2, 3)).astype(np.float32))
expected["classifier.weight"] = {"kind": "abs", "shape": [2, 3], "dense": [float(v) for v in head.reshape(-1)]}
torch.save({"diffs": diffs, "abs": {"classifier.weight": head}}, os.path.join(out, "pytorch_diff.bin"))
with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump(expected, f, indent=1)
