#!/usr/bin/env python3
"""Independent numpy implementation of weightsmith's spectral diagnostics (reference
spectral-grafting.md §A.1 and §E), written from the definitions, in float64. It writes

  Tests/SpectralTests/Fixtures/planted.safetensors   W0 (128x128 Gaussian/sqrt(n)), W0 + λ v vᵀ
                                                     (λ = 2 σ1), W0 + 1e-3 noise
  Tests/SpectralTests/Fixtures/expected_spectral.json  per matrix: σ(ΔW) (top 8), effective rank,
      stable rank, ‖ΔW‖/‖W0‖, σ1 ratio, top-8 energy, rank for 90 % energy, max-cosines of W's
      top-10 left singular vectors against all of W0's, intruder counts at ε ∈ {0.3,0.5,0.7},
      the amplification factor (§E.6: ‖ΔW‖_F / ‖Uᵀ W0 V‖_F over ΔW's top-r directions with
      σ_j ≥ 1e-3 σ_1, r = 8 or the LoRA rank, plus the W0-top and random yardsticks),
      and the update-subspace overlap φ of lora-a vs full-a (top-8 left vectors of ΔW);
      for fixtures/demo (lora-a, full-a) and the planted matrices.

Usage: python3 scripts/spectral_reference.py [--time]   (--time: only time the demo comparison)
"""
import json, os, sys, time
import numpy as np
from safetensors.numpy import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "Tests", "SpectralTests", "Fixtures")
EPS = [0.3, 0.5, 0.7]
TOPK = 10


def erank(s):
    s = s[s > 0]
    if s.size == 0:
        return 0.0
    p = s / s.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def amplification(w0, ud, sd, vdt, r):
    """§E.6 (Hu et al. 2021, §7.3) from ΔW's SVD; None for a zero update."""
    if sd.size == 0 or sd[0] <= 0:
        return None
    ra = 0
    while ra < min(r, sd.size) and sd[ra] >= 1e-3 * sd[0]:
        ra += 1
    proj = float(np.linalg.norm(ud[:, :ra].T @ w0 @ vdt[:ra].T))
    s0 = np.linalg.svd(w0, compute_uv=False)
    m, n = w0.shape
    return {"rank": ra, "projection": proj, "factor": float(np.sqrt((sd ** 2).sum()) / proj),
            "baseTopProjection": float(np.sqrt((s0[:ra] ** 2).sum())),
            "randomProjection": float(ra * np.linalg.norm(w0) / np.sqrt(m * n))}


def diagnostics(w0, w, energy_rank=8, delta=None):
    w0 = w0.astype(np.float64)
    w = w.astype(np.float64)
    d = (w - w0) if delta is None else delta
    u0, s0, _ = np.linalg.svd(w0, full_matrices=False)
    ut, st, _ = np.linalg.svd(w, full_matrices=False)
    ud, sd, vdt = np.linalg.svd(d, full_matrices=False)
    k = min(TOPK, ut.shape[1])
    maxcos = np.abs(ut[:, :k].T @ u0).max(axis=1)
    tot = (sd ** 2).sum()
    cum = np.cumsum(sd ** 2) / tot if tot > 0 else np.ones_like(sd)
    return {
        "sigmaUpdateTop": sd[:8].tolist(),
        "effectiveRank": erank(sd),
        "stableRank": float(tot / sd[0] ** 2) if sd[0] > 0 else 0.0,
        "relativeFrobenius": float(np.sqrt(tot) / np.linalg.norm(w0)),
        "relativeSpectral": float(sd[0] / s0[0]),
        "topEnergy": float(cum[energy_rank - 1]) if tot > 0 else 1.0,
        "rank90": int(np.searchsorted(cum, 0.9 * (1 - 1e-12)) + 1) if tot > 0 else 0,
        "maxCosines": maxcos.tolist(),
        "intruders": {str(e): int((maxcos < e).sum()) for e in EPS},
        "amplification": amplification(w0, ud, sd, vdt, energy_rank),
    }, ud


def load_adapter(path):
    cfg = json.load(open(os.path.join(path, "adapter_config.json")))
    t = load_file(os.path.join(path, "adapter_model.safetensors"))
    out = {}
    for k, a in t.items():
        if ".lora_A." not in k:
            continue
        mod = k[len("base_model.model."):k.index(".lora_A.")]
        b = t[k.replace(".lora_A.", ".lora_B.")]
        r = a.shape[0]
        s = cfg["lora_alpha"] / (np.sqrt(r) if cfg.get("use_rslora") else r)
        out[mod + ".weight"] = (s, a.astype(np.float64), b.astype(np.float64))
    return out


def demo():
    base = load_file(os.path.join(ROOT, "fixtures/demo/base/model.safetensors"))
    full = load_file(os.path.join(ROOT, "fixtures/demo/full-a/model.safetensors"))
    lora = load_adapter(os.path.join(ROOT, "fixtures/demo/lora-a"))
    res = {"lora-a": {}, "full-a": {}, "overlap": {}}
    for name in sorted(lora):
        s, a, b = lora[name]
        w0 = base[name].astype(np.float64)
        dl = s * (b @ a)
        res["lora-a"][name], ul = diagnostics(w0, w0 + dl, energy_rank=a.shape[0], delta=dl)
        res["full-a"][name], uf = diagnostics(w0, full[name], energy_rank=8)
        r1, r2 = a.shape[0], 8
        m = ul[:, :r1].T @ uf[:, :r2]
        res["overlap"][name] = float((m ** 2).sum() / min(r1, r2))
    return res


def planted():
    rng = np.random.default_rng(0)
    n = 128
    w0 = (rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32)
    v = rng.standard_normal(n); v /= np.linalg.norm(v)
    s1 = np.linalg.svd(w0.astype(np.float64), compute_uv=False)[0]
    wp = (w0 + 2.0 * s1 * np.outer(v, v)).astype(np.float32)
    wn = (w0 + 1e-3 * rng.standard_normal((n, n))).astype(np.float32)
    save_file({"w0": w0, "planted": wp, "noise": wn}, os.path.join(FIX, "planted.safetensors"))
    return {"planted": diagnostics(w0, wp)[0], "noise": diagnostics(w0, wn)[0], "identical": diagnostics(w0, w0.copy())[0]}


if __name__ == "__main__":
    if "--time" in sys.argv:
        t0 = time.perf_counter(); demo(); print(json.dumps({"impl": "numpy reference", "seconds": time.perf_counter() - t0}))
        sys.exit(0)
    os.makedirs(FIX, exist_ok=True)
    out = {"epsilons": EPS, "topK": TOPK, "demo": demo(), "planted": planted()}
    with open(os.path.join(FIX, "expected_spectral.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
    p = out["planted"]
    print("planted intruders @0.5:", p["planted"]["intruders"]["0.5"], "noise:", p["noise"]["intruders"]["0.5"],
          "identical:", p["identical"]["intruders"]["0.5"])
    tot = {k: sum(v["intruders"]["0.5"] for v in out["demo"][k].values()) for k in ("lora-a", "full-a")}
    print("demo intruders @0.5:", tot)
    for k in ("lora-a", "full-a"):
        f = [v["amplification"]["factor"] for v in out["demo"][k].values()]
        print(k, "amplification factor: mean %.3f min %.3f max %.3f" % (np.mean(f), min(f), max(f)))
    print("planted amplification:", p["planted"]["amplification"], "noise:", p["noise"]["amplification"]["factor"])
