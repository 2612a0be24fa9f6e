#!/usr/bin/env python3
"""Fixtures for `spectrum MODEL` (weightwatcher's metrics), written by weightwatcher itself.

    python3 scripts/make_esd_fixtures.py

Writes fixtures/spectral/esd-cases.safetensors, a few matrices that exercise every branch of
weightwatcher 0.7.7's analysis (a heavy-tailed matrix, a rank-deficient one whose rank and small
eigenvalues need an SVD, a matrix with fewer than 20 eigenvalues for the small-sample fit, a wide
matrix, tensors it skips), then runs scripts/weightwatcher_reference.py on it and on
fixtures/family/base, giving fixtures/spectral/weightwatcher-esd-cases.json and
fixtures/spectral/weightwatcher-family-base.json. Deterministic (fixed seed).
"""
import os, subprocess, sys
import numpy as np
from safetensors.numpy import save_file

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out = os.path.join(root, "fixtures", "spectral")
rng = np.random.default_rng(20261207)
t = {}
# heavy-tailed: Student-t entries (3 degrees of freedom), 300 x 100
t["heavy.weight"] = rng.standard_t(3, size=(300, 100)).astype(np.float32) * 0.05
# rank 20 of 64 x 48 (in Float32 rounding: 40 tiny singular values) and 8 zero columns
# (8 exactly zero singular values: rank loss, the SVD path)
a = rng.standard_normal((64, 20)).astype(np.float32)
b = rng.standard_normal((20, 48)).astype(np.float32)
low = (a @ b * 0.1).astype(np.float32)
low[:, 40:] = 0
t["low_rank.weight"] = low
# 12 eigenvalues: the small-sample rule (fewer than 20)
t["small.weight"] = (rng.standard_normal((40, 12)) * np.linspace(0.1, 3, 12)).astype(np.float32)
# wide: 30 x 90 (N = 90, M = 30; the Gram on the row side)
t["wide.weight"] = (rng.standard_normal((30, 90)) @ np.diag(rng.gamma(1.0, 1.0, 90))).astype(np.float32) * 0.2
# skipped: 1-D, too few eigenvalues, and a name without .weight
t["norm.weight"] = np.ones(64, dtype=np.float32)
t["thin.weight"] = rng.standard_normal((3, 100)).astype(np.float32)
t["other.bias"] = rng.standard_normal((50, 50)).astype(np.float32)
save_file(t, os.path.join(out, "esd-cases.safetensors"))
ref = os.path.join(root, "scripts", "weightwatcher_reference.py")
subprocess.run([sys.executable, ref, os.path.join(out, "esd-cases.safetensors"), "-o",
                os.path.join(out, "weightwatcher-esd-cases.json")], check=True)
subprocess.run([sys.executable, ref, os.path.join(root, "fixtures", "family", "base"), "-o",
                os.path.join(out, "weightwatcher-family-base.json")], check=True)
