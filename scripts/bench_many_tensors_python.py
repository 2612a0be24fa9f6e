#!/usr/bin/env python3
"""Times Python safetensors on a many-tensor file: safe_open, keys(), metadata() and each
tensor's dtype/shape (get_slice), the Python counterpart of `weightsmith inspect`.

    python3 scripts/bench_many_tensors_python.py FILE
"""
import resource
import sys
import time

from safetensors import safe_open

t0 = time.perf_counter()
with safe_open(sys.argv[1], framework="numpy") as f:
    keys = f.keys()
    meta = f.metadata()
    t1 = time.perf_counter()
    shapes = [(s.get_dtype(), s.get_shape()) for s in (f.get_slice(k) for k in keys)]
t2 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{len(keys)} tensors, {len(meta or {})} metadata keys: open+keys+metadata {t1 - t0:.2f} s, "
      f"+dtype/shape of every tensor {t2 - t0:.2f} s, peak RSS {rss:.0f} MB")
