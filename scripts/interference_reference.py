#!/usr/bin/env python3
"""numpy reference for `weightsmith interference` on fixtures/family (issue 16).

Usage: python3 scripts/interference_reference.py [OUT_JSON]
(default Tests/SpectralTests/Fixtures/expected_interference.json)

Task vectors τ_t = T_t − base over every 2-D tensor except embeddings / lm_head, for the three full
fine-tunes of fixtures/family. Per pair and per matrix, in float64:
  cosine        <τ_i, τ_j> / (‖τ_i‖ ‖τ_j‖)
  sign_conflict TIES (Yadav et al. 2023, topk_values_mask): keep |τ| >= kthvalue(|τ|, d − int(d·0.2))
                over the whole flattened task vector; among entries kept in both, share with τ_i τ_j < 0
  overlap       ‖U_iᵀ U_j‖_F² / r with U the top-8 left singular vectors of each τ (numpy.linalg.svd)
Aggregates: cosine of the concatenation, conflicts / both-kept summed, mean overlap.
"""
import json
import os
import sys

import numpy as np
from safetensors.numpy import load_file

ROOT = os.path.join(os.path.dirname(__file__), "..")
FAMILY = os.path.join(ROOT, "fixtures", "family")
TASKS = ["capital-full", "continent-full", "profession-full"]
DENSITY, RANK = 0.2, 8


def is_embedding_like(name):
    l = name.lower()
    return "embed" in l or "lm_head" in l or l.startswith("wte") or ".wte." in l or ".wpe." in l or l.startswith("wpe")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "Tests", "SpectralTests", "Fixtures", "expected_interference.json")
    base = load_file(os.path.join(FAMILY, "base", "model.safetensors"))
    names = sorted(n for n, t in base.items() if t.ndim == 2 and not is_embedding_like(n))
    taus = {}
    for t in TASKS:
        ft = load_file(os.path.join(FAMILY, t, "model.safetensors"))
        # float32 subtraction as weightsmith does, then float64 for every statistic
        taus[t] = {n: (ft[n].astype(np.float32) - base[n].astype(np.float32)).astype(np.float64) for n in names}
    thresholds = {}
    for t in TASKS:
        flat = np.abs(np.concatenate([taus[t][n].ravel() for n in names]))
        d = flat.size
        k = d - int(d * DENSITY)
        thresholds[t] = float(np.sort(flat)[k - 1])
    pairs = []
    for a in range(len(TASKS)):
        for b in range(a + 1, len(TASKS)):
            ti, tj = TASKS[a], TASKS[b]
            mats = {}
            dot = n1 = n2 = 0.0
            conf = both = 0
            ov = []
            for n in names:
                x, y = taus[ti][n], taus[tj][n]
                kept = (np.abs(x) >= thresholds[ti]) & (np.abs(y) >= thresholds[tj])
                c = int(np.sum(kept & (x * y < 0)))
                bk = int(np.sum(kept))
                r = min(RANK, *x.shape)
                ui = np.linalg.svd(x, full_matrices=False)[0][:, :r]
                uj = np.linalg.svd(y, full_matrices=False)[0][:, :r]
                phi = float(np.sum((ui.T @ uj) ** 2) / r)
                mats[n] = {"cosine": float(np.sum(x * y) / (np.linalg.norm(x) * np.linalg.norm(y))),
                           "sign_conflict": c / bk if bk else None, "both_kept": bk, "overlap": phi}
                dot += float(np.sum(x * y)); n1 += float(np.sum(x * x)); n2 += float(np.sum(y * y))
                conf += c; both += bk; ov.append(phi)
            pairs.append({"first": ti, "second": tj,
                          "overall": {"cosine": dot / np.sqrt(n1 * n2), "sign_conflict": conf / both, "both_kept": both,
                                      "overlap": float(np.mean(ov))},
                          "matrices": mats})
    with open(out, "w") as f:
        json.dump({"density": DENSITY, "rank": RANK, "tasks": TASKS, "thresholds": thresholds, "pairs": pairs}, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
