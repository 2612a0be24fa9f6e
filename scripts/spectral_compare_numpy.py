#!/usr/bin/env python3
"""The peer of `weightsmith compare` for benchmarks: the same per-matrix quantities computed the
way a notebook would, with numpy (float32 inputs, numpy.linalg.svd), no caching.

Per adapted matrix: SVD of W0 (all left vectors), of W0 + s·B·A and of the full fine-tune W
(top-10 left vectors -> max |cos| against all of W0's -> intruders at ε 0.5), singular values of
both updates (effective rank, stable rank, relative norms, top-r energy), the amplification
factor ‖ΔW‖_F / ‖Uᵀ W0 V‖_F of each update's top-r directions (r = 8, the LoRA rank), and the overlap φ of
the two updates' top-8 left singular subspaces.
Usage: python3 scripts/spectral_compare_numpy.py BASE_DIR LORA_DIR FULL_DIR"""
import json, os, sys, time
import numpy as np
from safetensors import safe_open

t0 = time.perf_counter()
base_dir, lora_dir, full_dir = sys.argv[1:4]
cfg = json.load(open(os.path.join(lora_dir, "adapter_config.json")))
base = safe_open(os.path.join(base_dir, "model.safetensors"), "np")
full = safe_open(os.path.join(full_dir, "model.safetensors"), "np")
ad = safe_open(os.path.join(lora_dir, "adapter_model.safetensors"), "np")


def stats(s, r):
    p = s[s > 0] / s.sum()
    e2 = (s.astype(np.float64) ** 2)
    return {"erank": float(np.exp(-(p * np.log(p)).sum())), "srank": float(e2.sum() / e2[0]),
            "fro": float(np.sqrt(e2.sum())), "s1": float(s[0]), "energy": float(e2[:r].sum() / e2.sum())}


def amplification(w0, u, s, vt, r):
    ra = int((s[:r] >= 1e-3 * s[0]).sum())
    return float(np.sqrt((s.astype(np.float64) ** 2).sum()) / np.linalg.norm(u[:, :ra].T @ w0 @ vt[:ra].T))


def intruders(u0, w, k=10, eps=0.5):
    u, s, _ = np.linalg.svd(w, full_matrices=False)
    c = np.abs(u[:, :k].T @ u0).max(axis=1)
    return int((c < eps).sum()), c


rows = []
for key in sorted(ad.keys()):
    if ".lora_A." not in key:
        continue
    name = key[len("base_model.model."):key.index(".lora_A.")] + ".weight"
    a = ad.get_tensor(key).astype(np.float32)
    b = ad.get_tensor(key.replace(".lora_A.", ".lora_B.")).astype(np.float32)
    r = a.shape[0]
    s = cfg["lora_alpha"] / (np.sqrt(r) if cfg.get("use_rslora") else r)
    w0 = base.get_tensor(name).astype(np.float32)
    wf = full.get_tensor(name).astype(np.float32)
    dl = (s * (b @ a)).astype(np.float32)
    df = wf - w0
    u0, s0, _ = np.linalg.svd(w0, full_matrices=False)
    il, _ = intruders(u0, w0 + dl)
    i_f, _ = intruders(u0, wf)
    ul, sl, vl = np.linalg.svd(dl, full_matrices=False)
    uf, sf, vf = np.linalg.svd(df, full_matrices=False)
    phi = float(((ul[:, :r].T @ uf[:, :8]) ** 2).sum() / min(r, 8))
    rows.append({"name": name, "lora": {**stats(sl[:r], r), "intruders": il, "amplification": amplification(w0, ul, sl[:r], vl, r)},
                 "full": {**stats(sf, 8), "intruders": i_f, "amplification": amplification(w0, uf, sf, vf, 8)},
                 "phi": phi, "rel_lora": float(np.sqrt((sl ** 2).sum()) / np.linalg.norm(w0)),
                 "rel_full": float(np.linalg.norm(df) / np.linalg.norm(w0))})
print(json.dumps({"impl": "numpy", "matrices": len(rows), "intruders_lora": sum(r["lora"]["intruders"] for r in rows),
                  "intruders_full": sum(r["full"]["intruders"] for r in rows),
                  "mean_phi": float(np.mean([r["phi"] for r in rows])),
                  "mean_amplification_lora": float(np.mean([r["lora"]["amplification"] for r in rows])),
                  "mean_amplification_full": float(np.mean([r["full"]["amplification"] for r in rows])),
                  "seconds": time.perf_counter() - t0}))
