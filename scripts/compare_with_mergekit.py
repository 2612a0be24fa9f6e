#!/usr/bin/env python3
"""Agreement check: weightsmith vs mergekit on the same inputs and recipes (dtype: float32).

Usage: python3 scripts/compare_with_mergekit.py [BASE FT1 FT2 FT3] [--weightsmith PATH] [--work DIR]
Defaults to the committed fixtures (fixtures/merge/{base,ft-a,ft-b,ft-c}) and .build/release/weightsmith.
For every deterministic method it runs `mergekit-yaml` (CPU) and `weightsmith merge` on the same
recipe and prints, per method, the largest per-tensor relative difference
max|ours − mergekit| / max|mergekit| over all tensors.
"""
import argparse
import glob
import os
import subprocess
import sys
import time

import numpy as np
from safetensors.numpy import load_file

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))


def recipes(base, a, b, c):
    models3 = lambda params: "".join(f"  - model: {m}\n    parameters: {{{p}}}\n" for m, p in zip((a, b, c), params))
    return {
        "linear": f"merge_method: linear\nmodels:\n{models3(['weight: 0.5', 'weight: 0.3', 'weight: 0.2'])}dtype: float32\n",
        "task_arithmetic": f"merge_method: task_arithmetic\nbase_model: {base}\nmodels:\n{models3(['weight: 1.0', 'weight: 0.5', 'weight: -0.3'])}parameters: {{lambda: 0.8}}\ndtype: float32\n",
        "ties": f"merge_method: ties\nbase_model: {base}\nmodels:\n{models3(['weight: 1.0, density: 0.5', 'weight: 0.7, density: 0.3', 'weight: 0.5, density: 0.7'])}dtype: float32\n",
        "breadcrumbs": f"merge_method: breadcrumbs\nbase_model: {base}\nmodels:\n{models3(['weight: 1.0, density: 0.6, gamma: 0.05'] * 3)}dtype: float32\n",
        "breadcrumbs_ties": f"merge_method: breadcrumbs_ties\nbase_model: {base}\nmodels:\n{models3(['weight: 1.0, density: 0.6, gamma: 0.05'] * 3)}dtype: float32\n",
        "slerp": f"merge_method: slerp\nbase_model: {base}\nmodels:\n  - model: {base}\n  - model: {a}\nparameters:\n  t: [{{filter: self_attn, value: [0, 0.5, 1]}}, {{value: 0.3}}]\ndtype: float32\n",
        "nuslerp": f"merge_method: nuslerp\nbase_model: {base}\nmodels:\n  - model: {a}\n    parameters: {{weight: 0.4}}\n  - model: {b}\n    parameters: {{weight: 0.6}}\ndtype: float32\n",
        "nuslerp_rows": f"merge_method: nuslerp\nmodels:\n  - model: {a}\n    parameters: {{weight: 1.0}}\n  - model: {b}\n    parameters: {{weight: 2.0}}\nparameters: {{nuslerp_flatten: false}}\ndtype: float32\n",
        "multislerp": f"merge_method: multislerp\nbase_model: {base}\nmodels:\n{models3(['weight: 1.0', 'weight: 0.5', 'weight: 0.5'])}dtype: float32\n",
        "karcher": f"merge_method: karcher\nmodels:\n  - model: {a}\n  - model: {b}\n  - model: {c}\ndtype: float32\n",
        "model_stock": f"merge_method: model_stock\nbase_model: {base}\nmodels:\n  - model: {a}\n  - model: {b}\n  - model: {c}\ndtype: float32\n",
        "passthrough": f"merge_method: passthrough\nslices:\n  - sources: [{{model: {a}, layer_range: [0, 2]}}]\n  - sources: [{{model: {b}, layer_range: [1, 2]}}]\ndtype: float32\n",
    }


def load_dir(d):
    out = {}
    for f in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
        out.update(load_file(f))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*")
    ap.add_argument("--weightsmith", default=os.path.join(ROOT, ".build", "release", "weightsmith"))
    ap.add_argument("--work", default="/tmp/ws-mergekit-agreement")
    ap.add_argument("--only", default=None)
    args = ap.parse_args()
    models = args.models or [os.path.join(ROOT, "fixtures", "merge", n) for n in ("base", "ft-a", "ft-b", "ft-c")]
    os.makedirs(args.work, exist_ok=True)
    worst_all = 0.0
    print(f"{'method':18} {'tensors':>7} {'max rel diff':>13} {'mergekit s':>10} {'weightsmith s':>13}")
    for name, text in recipes(*models).items():
        if args.only and name not in args.only.split(","):
            continue
        rp = os.path.join(args.work, f"{name}.yml")
        with open(rp, "w") as f:
            f.write(text)
        mk, ws = os.path.join(args.work, f"mk-{name}"), os.path.join(args.work, f"ws-{name}")
        subprocess.run(["rm", "-rf", mk, ws], check=True)
        t0 = time.time()
        subprocess.run(["mergekit-yaml", rp, mk, "--no-copy-tokenizer"], check=True, capture_output=True)
        t1 = time.time()
        subprocess.run([args.weightsmith, "merge", rp, ws, "--quiet", "--no-hash"], check=True)
        t2 = time.time()
        A, B = load_dir(ws), load_dir(mk)
        if set(A) != set(B):
            print(f"{name}: tensor sets differ: only ours {sorted(set(A) - set(B))[:5]}, only mergekit {sorted(set(B) - set(A))[:5]}")
        worst = 0.0
        for k in sorted(set(A) & set(B)):
            a, b = A[k].astype(np.float64), B[k].astype(np.float64)
            scale = max(np.abs(b).max(), 1e-30)
            worst = max(worst, float(np.abs(a - b).max() / scale))
        worst_all = max(worst_all, worst)
        print(f"{name:18} {len(A):7d} {worst:13.2e} {t1 - t0:10.2f} {t2 - t1:13.2f}")
    print(f"largest relative difference over all methods: {worst_all:.2e}")
    return 0 if worst_all < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
