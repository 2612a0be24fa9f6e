#!/usr/bin/env python3
"""Peer timings for scripts/bench_svd.sh: float32 thin SVD (with vectors) of seeded square
Gaussian matrices with scipy.linalg.svd(lapack_driver='gesdd') in float32 and with
numpy.linalg.svd (which computes float32 input in float64). One JSON line per (impl, size)."""
import json, sys, time
import numpy as np
import scipy.linalg

sizes = [int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "512,1024,2048").split(",")]
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
rng = np.random.default_rng(0)
for n in sizes:
    a = rng.standard_normal((n, n)).astype(np.float32)
    scipy.linalg.svd(a[:64, :64], full_matrices=False, lapack_driver="gesdd")
    for name, fn in [
        ("scipy gesdd f32", lambda: scipy.linalg.svd(a, full_matrices=False, lapack_driver="gesdd")),
        ("numpy.linalg.svd", lambda: np.linalg.svd(a, full_matrices=False)),
    ]:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            u, s, vt = fn()
            times.append(time.perf_counter() - t0)
        times.sort()
        print(json.dumps({"kernel": "svd", "impl": name, "n": n, "best_s": times[0],
                          "median_s": times[len(times) // 2], "dtype": str(u.dtype)}), flush=True)
