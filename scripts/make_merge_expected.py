#!/usr/bin/env python3
"""Reference outputs for the Swift merge methods (Tests/MergingTests/Fixtures/merge_expected.json).

Written from mergekit's documented semantics directly in numpy/float64,
independently of the Swift code: every method below works on plain flattened vectors, the way
the reference describes it (the Swift code uses fused loops and Gram-matrix shortcuts instead).
Where weightsmith deliberately differs from mergekit (documented in Sources/Merging/README.md)
the reference follows weightsmith's corrected rule and says so in a comment.

Inputs are float32 values (so Swift sees exactly the same numbers); arithmetic is float64.
Run: python3 scripts/make_merge_expected.py
"""
import json
import math
import os

import numpy as np

rng = np.random.default_rng(20261127)
SHAPE = (4, 6)


def f32(a):
    return np.asarray(a, dtype=np.float32)


base = f32(rng.standard_normal(SHAPE))
models = [f32(base + 0.3 * rng.standard_normal(SHAPE)) for _ in range(3)]
B = base.astype(np.float64)
X = [m.astype(np.float64) for m in models]


# ---- linear -----------------------------------------------------------------------------
def linear(xs, w, normalize=True):
    res = sum(wi * xi for wi, xi in zip(w, xs))
    return res / sum(w) if normalize else res


# ---- task-arithmetic family -------------------------------------------------------------
def magnitude_keep(delta, lo, hi):
    """Keep elements whose ascending rank by |delta| lies in [lo, hi); ties: lower index ranks higher."""
    flat = delta.ravel()
    n = flat.size
    # sort ascending by magnitude, and for equal magnitudes by descending index
    order = sorted(range(n), key=lambda i: (abs(flat[i]), -i))
    keep = np.zeros(n, dtype=bool)
    for r in range(max(lo, 0), min(hi, n)):
        keep[order[r]] = True
    return np.where(keep, flat, 0.0).reshape(delta.shape)


def sparsify_magnitude(delta, density):
    if density >= 1:
        return delta
    n = delta.size
    k = int(density * n)
    return magnitude_keep(delta, n - k, n)


def sparsify_breadcrumbs(delta, density, gamma):
    if density >= 1:
        return delta
    n = delta.size
    target = int(density * n)
    n_top = int(gamma * n)
    n_bot = n - target - n_top
    if n_bot < 0:
        n_top += n_bot
        n_bot = 0
    # mergekit slices sorted[n_bot:-n_top] (empty when n_top == 0); weightsmith keeps [n_bot, n - n_top).
    return magnitude_keep(delta, n_bot, n - n_top)


def gta(base, xs, w, density, consensus, sparsify, normalize, lam=1.0, gamma=None):
    deltas = []
    for i, x in enumerate(xs):
        d = x - base
        if sparsify == "magnitude":
            d = sparsify_magnitude(d, density[i])
        elif sparsify == "outliers":
            d = sparsify_breadcrumbs(d, density[i], gamma[i])
        deltas.append(d)
    W = [np.full(base.shape, wi) for wi in w]
    D = [wi * d for wi, d in zip(W, deltas)]
    if consensus:
        S = sum(D)
        sigma = np.where(S >= 0, 1.0, -1.0)
        M = [(np.sign(d) == sigma).astype(np.float64) for d in D]
        mixed = sum(d * m for d, m in zip(D, M))
        divisor = sum(wi * m for wi, m in zip(W, M))
        divisor[divisor == 0] = 1
    else:
        mixed = sum(D)
        divisor = sum(W)
        divisor[np.abs(divisor) < 1e-8] = 1
    if normalize:
        mixed = mixed / divisor
    return base + lam * mixed


# ---- slerp family -----------------------------------------------------------------------
def slerp(t, v0, v1):
    a, b = v0.ravel(), v1.ravel()
    n0, n1 = np.linalg.norm(a), np.linalg.norm(b)
    dot = np.dot(a / n0, b / n1)
    if abs(dot) > 0.9995:
        return (1 - t) * v0 + t * v1
    th = math.acos(dot)
    return (math.sin((1 - t) * th) * v0 + math.sin(t * th) * v1) / math.sin(th)


def nuslerp_vectors(t, v0, v1):
    """v0, v1: (..., L); slerp along the last axis."""
    u0 = v0 / np.maximum(np.linalg.norm(v0, axis=-1, keepdims=True), 1e-7)
    u1 = v1 / np.maximum(np.linalg.norm(v1, axis=-1, keepdims=True), 1e-7)
    th = np.arccos(np.clip((u0 * u1).sum(-1, keepdims=True), -1, 1))
    s = np.sin(th)
    res = (np.sin((1 - t) * th) * v0 + np.sin(t * th) * v1) / np.where(np.abs(s) < 1e-8, 1, s)
    lerp = (1 - t) * v0 + t * v1
    return np.where(np.abs(s) < 1e-8, lerp, res)


def nuslerp(w, a, b, base=None, flatten=True, row_wise=False):
    t = 0.5 if abs(w[0] + w[1]) < 1e-6 else w[1] / (w[0] + w[1])
    v0, v1 = (a - base, b - base) if base is not None else (a, b)
    if flatten:
        res = nuslerp_vectors(t, v0.reshape(1, -1), v1.reshape(1, -1)).reshape(a.shape)
    elif row_wise:  # vectors W[:, j]
        res = nuslerp_vectors(t, v0.T, v1.T).T
    else:  # vectors W[i, :]
        res = nuslerp_vectors(t, v0, v1)
    return res + base if base is not None else res


def multislerp(xs, w, base=None, normalize_weights=True, eps=1e-8):
    w = np.array(w, dtype=np.float64)
    if normalize_weights:
        w = w / w.sum()
    V = np.stack([(x - base if base is not None else x).ravel() for x in xs])
    n = np.linalg.norm(V, axis=1)
    U = V / (n[:, None] + eps)
    m = (w[:, None] * U).sum(0)
    mh = m / np.linalg.norm(m)
    T = (w[:, None] * (U - (U @ mh)[:, None] * mh[None, :])).sum(0)
    tau = np.linalg.norm(T) + eps
    r = mh * math.cos(tau) + T * math.sin(tau) / tau
    r = r * (w * n).sum()
    r = r.reshape(xs[0].shape)
    return r + base if base is not None else r


def karcher(xs, alpha, max_iter=10, tol=1e-5):
    V = [x.ravel() for x in xs]
    norms = [np.linalg.norm(v) for v in V]
    units = [v / nv if nv > 0 else np.zeros_like(v) for v, nv in zip(V, norms)]
    valid = [i for i, nv in enumerate(norms) if nv > tol]
    a = {i: alpha[i] / sum(alpha[j] for j in valid) for i in valid}
    u = sum(a[i] * units[i] for i in valid)
    u = u / np.linalg.norm(u)
    for _ in range(max_iter):
        T = np.zeros_like(u)
        for i in valid:
            c = float(np.clip(np.dot(u, units[i]), -1, 1))
            th = math.acos(c)
            if th < tol:
                continue
            T += a[i] * (th / math.sin(th)) * (units[i] - c * u)
        tn = np.linalg.norm(T)
        if tn < tol:
            break
        u = math.cos(tn) * u + math.sin(tn) * T / tn
        u = u / np.linalg.norm(u)
    scale = sum(al * nv for al, nv in zip(alpha, norms))
    return (scale * u).reshape(xs[0].shape)


def model_stock(base, xs, filter_wise=False):
    def ratio(ds):
        N = len(ds)
        cs = []
        for i in range(N):
            for j in range(i + 1, N):
                c = np.dot(ds[i], ds[j]) / max(np.linalg.norm(ds[i]) * np.linalg.norm(ds[j]), 1e-6)
                cs.append(min(1.0, max(-1.0, c)))
        c = sum(cs) / len(cs)
        return N * c / (1 + (N - 1) * c)
    mean = sum(xs) / len(xs)
    if not filter_wise:
        t = ratio([(x - base).ravel() for x in xs])
        return t * mean + (1 - t) * base
    out = np.empty_like(base)
    for r in range(base.shape[0]):
        t = ratio([(x[r] - base[r]) for x in xs])
        out[r] = t * mean[r] + (1 - t) * base[r]
    return out


cases = []


def case(name, method, expected, models_idx=(0, 1, 2), use_base=True, global_params=None, per_model=None, inputs=None,
         base_values=None):
    ms = inputs if inputs is not None else [models[i] for i in models_idx]
    b = base if base_values is None else base_values
    cases.append({
        "name": name,
        "method": method,
        "shape": list(ms[0].shape),
        "base": b.ravel().tolist() if use_base else None,
        "models": [m.ravel().tolist() for m in ms],
        "global": global_params or {},
        "perModel": per_model or [{} for _ in ms],
        "expected": np.asarray(expected, dtype=np.float64).ravel().tolist(),
    })


w3 = [0.5, 0.3, 0.2]
case("linear_normalized", "linear", linear(X, [0.6, 0.3, 0.4]), use_base=False,
     per_model=[{"weight": 0.6}, {"weight": 0.3}, {"weight": 0.4}])
case("linear_unnormalized", "linear", linear(X, [1, -0.5, 2], normalize=False), use_base=False,
     global_params={"normalize": False}, per_model=[{"weight": 1}, {"weight": -0.5}, {"weight": 2}])
case("task_arithmetic", "task_arithmetic", gta(B, X, [1, 0.5, -0.3], [1] * 3, False, None, False, lam=0.7),
     global_params={"lambda": 0.7}, per_model=[{"weight": 1}, {"weight": 0.5}, {"weight": -0.3}])
case("ties_density_half", "ties", gta(B, X, [1, 0.5, 0.8], [0.5] * 3, True, "magnitude", True),
     per_model=[{"weight": 1, "density": 0.5}, {"weight": 0.5, "density": 0.5}, {"weight": 0.8, "density": 0.5}])
case("ties_mixed_density_lambda", "ties", gta(B, X, [1, 1, 1], [0.3, 0.7, 1.0], True, "magnitude", True, lam=1.3),
     global_params={"lambda": 1.3},
     per_model=[{"weight": 1, "density": 0.3}, {"weight": 1, "density": 0.7}, {"weight": 1, "density": 1.0}])
case("ties_unnormalized", "ties", gta(B, X, [0.7, 0.4, 0.9], [0.6] * 3, True, "magnitude", False),
     global_params={"normalize": False},
     per_model=[{"weight": 0.7, "density": 0.6}, {"weight": 0.4, "density": 0.6}, {"weight": 0.9, "density": 0.6}])
case("breadcrumbs", "breadcrumbs", gta(B, X, [1, 0.5, 0.8], [0.6] * 3, False, "outliers", False, gamma=[0.1] * 3),
     per_model=[{"weight": 1, "density": 0.6, "gamma": 0.1}, {"weight": 0.5, "density": 0.6, "gamma": 0.1},
                {"weight": 0.8, "density": 0.6, "gamma": 0.1}])
case("breadcrumbs_small_gamma", "breadcrumbs", gta(B, X, [1, 1, 1], [0.5] * 3, False, "outliers", False, gamma=[0.01] * 3),
     per_model=[{"weight": 1, "density": 0.5}] * 3)
case("breadcrumbs_ties", "breadcrumbs_ties", gta(B, X, [1, 0.5, 0.8], [0.6] * 3, True, "outliers", False, gamma=[0.1] * 3),
     per_model=[{"weight": 1, "density": 0.6, "gamma": 0.1}, {"weight": 0.5, "density": 0.6, "gamma": 0.1},
                {"weight": 0.8, "density": 0.6, "gamma": 0.1}])
case("slerp", "slerp", slerp(0.3, B, X[0]), models_idx=(0,), global_params={"t": 0.3})
far = f32(rng.standard_normal(SHAPE))
case("slerp_far", "slerp", slerp(0.65, B, far.astype(np.float64)), inputs=[far], global_params={"t": 0.65})
case("nuslerp_flat_base", "nuslerp", nuslerp([0.4, 0.6], X[0], X[1], base=B), models_idx=(0, 1),
     per_model=[{"weight": 0.4}, {"weight": 0.6}])
case("nuslerp_rows_nobase", "nuslerp", nuslerp([1, 3], X[0], X[1], flatten=False), models_idx=(0, 1), use_base=False,
     global_params={"nuslerp_flatten": False}, per_model=[{"weight": 1}, {"weight": 3}])
case("nuslerp_columns_base", "nuslerp", nuslerp([2, 1], X[1], X[2], base=B, flatten=False, row_wise=True), models_idx=(1, 2),
     global_params={"nuslerp_flatten": False, "nuslerp_row_wise": True}, per_model=[{"weight": 2}, {"weight": 1}])
case("multislerp_base", "multislerp", multislerp(X, w3, base=B), per_model=[{"weight": w} for w in w3])
case("multislerp_nobase", "multislerp", multislerp(X, [1, 2, 1]), use_base=False, per_model=[{"weight": w} for w in [1, 2, 1]])
case("karcher_equal", "karcher", karcher(X, [1 / 3] * 3), use_base=False)
# weightsmith honours weights (mergekit ignores them): alpha = w / sum(w)
case("karcher_weighted", "karcher", karcher(X, [0.5, 0.25, 0.25]), use_base=False,
     per_model=[{"weight": 2}, {"weight": 1}, {"weight": 1}])
case("model_stock", "model_stock", model_stock(B, X))
case("model_stock_filter_wise", "model_stock", model_stock(B, X, filter_wise=True), global_params={"filter_wise": True})
case("passthrough_scale", "passthrough", 0.5 * X[1], models_idx=(1,), use_base=False, per_model=[{"scale": 0.5}])


# ---- SVD-based merges (Gargiulo et al. 2025, TSV-M; Marczak et al. 2025, Iso-C/Iso-CTS) --------------------------
def rank(s, shape, scale=None):
    """Numerical rank: singular values above max(m, n) * eps32 * scale (numpy's matrix_rank rule,
    float32 eps); weightsmith leaves rounding-level directions out of the SVD-based merges."""
    top = s[0] if scale is None else scale
    return int((s > max(shape) * np.finfo(np.float32).eps * top).sum()) if top > 0 else 0


def polar(a):
    p, s, qt = np.linalg.svd(a, full_matrices=False)
    r = rank(s, a.shape)
    return p[:, :r] @ qt[:r]


def tsv_m(base, xs, alpha=1.0):
    ds = [x - base for x in xs]
    if base.ndim != 2:
        return base + alpha * sum(ds) / len(ds)
    r = min(base.shape)
    k = r // len(ds)
    us, ss, vs = [], [], []
    for d in ds:
        u, s, vt = np.linalg.svd(d, full_matrices=False)
        kt = min(k, rank(s, d.shape))
        us.append(u[:, :kt]); ss.append(s[:kt]); vs.append(vt[:kt])
    U, S, V = polar(np.hstack(us)), np.concatenate(ss), polar(np.vstack(vs))
    return base + alpha * (U * S) @ V


def iso_c(base, xs, alpha=1.0):
    ds = [x - base for x in xs]
    if base.ndim != 2:
        return base + alpha * sum(ds) / len(ds)
    u, s, vt = np.linalg.svd(sum(ds), full_matrices=False)
    r = rank(s, base.shape)
    return base + alpha * s.mean() * (u[:, :r] @ vt[:r])


def iso_cts(base, xs, alpha=1.0, frac=0.8):
    ds = [x - base for x in xs]
    T = len(ds)
    r = min(base.shape)
    kc = int(r * frac)
    kc = r - round((r - kc) / T) * T
    per = (r - kc) // T
    u, s, vt = np.linalg.svd(sum(ds), full_matrices=False)
    uc, sc, vc = u[:, :kc], s[:kc], vt[:kc]
    us, ss, vs = [], [], []
    for d in ds:
        res = d - uc @ (uc.T @ d)
        ut, st, vtt = np.linalg.svd(res, full_matrices=False)
        kt = min(per, rank(st, res.shape, scale=s[0]))
        us.append(ut[:, :kt]); ss.append(st[:per]); vs.append(vtt[:kt])
    kc_kept = min(kc, rank(s, base.shape))
    us.append(uc[:, :kc_kept]); ss.append(sc); vs.append(vc[:kc_kept])
    S = np.concatenate(ss)
    U, V = polar(np.hstack(us)), polar(np.vstack(vs))
    return base + alpha * S.mean() * (U @ V)


big_base = f32(rng.standard_normal((12, 10)))
big_models = [f32(big_base + 0.2 * rng.standard_normal((12, 10))) for _ in range(3)]
BB = big_base.astype(np.float64)
BX = [m.astype(np.float64) for m in big_models]
case("tsv_three_tasks", "tsv", tsv_m(BB, BX, 0.8), inputs=big_models, base_values=big_base, global_params={"alpha": 0.8})
case("tsv_one_task_reconstructs", "tsv", BX[0], inputs=big_models[:1], base_values=big_base)
case("iso_c", "iso_c", iso_c(BB, BX, 1.2), inputs=big_models, base_values=big_base, global_params={"alpha": 1.2})
case("iso_cts", "iso_cts", iso_cts(BB, BX), inputs=big_models, base_values=big_base)
case("iso_cts_half", "iso_cts", iso_cts(BB, BX[:2], 1.0, 0.5), inputs=big_models[:2], base_values=big_base,
     global_params={"common_space_fraction": 0.5})
vec_base = f32(rng.standard_normal((7,)))
vec_models = [f32(vec_base + 0.1 * rng.standard_normal((7,))) for _ in range(3)]
case("tsv_vector_is_mean", "tsv", vec_base + 0.5 * sum(m.astype(np.float64) - vec_base for m in vec_models) / 3,
     inputs=vec_models, base_values=vec_base, global_params={"alpha": 0.5})


# ---- sce, ram, ramplus_tl, nearswap (mergekit sce.py / ram.py / nearswap.py semantics) ------
def sce(base, xs, topk=1.0):
    tv = np.stack([x - base for x in xs])
    if topk < 1:
        var = tv.var(axis=0)  # population variance over the models
        k = int(np.count_nonzero(var) * topk)
        flat = var.ravel()
        order = sorted(range(flat.size), key=lambda i: (-abs(flat[i]), i))  # ties: lower index first
        mask = np.zeros(flat.size, dtype=bool)
        mask[order[:k]] = True
        tv = tv * mask.reshape(var.shape)
    majority = np.where(tv.sum(axis=0) >= 0, 1.0, -1.0)
    agree = np.sign(tv) == majority
    ms = (tv ** 2).reshape(len(xs), -1).mean(axis=1)
    w = np.full(len(xs), 1 / len(xs)) if abs(ms.sum()) < 1e-6 else ms / ms.sum()
    ew = w.reshape(-1, *([1] * base.ndim)) * agree
    return base + (tv * ew).sum(axis=0) / np.maximum(ew.sum(axis=0), 1e-6)


def ram(base, xs, eps, plus=False, r=0.1, alpha=0.2):
    tv = np.stack([x - base for x in xs]).reshape(len(xs), -1)
    nz = np.abs(tv) > eps
    c = nz.sum(axis=0)
    unique, overlap = c == 1, c > 1
    lam = np.ones(len(xs))
    if plus:
        rho = (nz & overlap).sum(axis=1) / np.maximum((nz & unique).sum(axis=1), eps)
        lam = 1 + r * np.clip(rho, 0, alpha)
    z = tv * nz
    merged = (z * unique * lam[:, None] + z * overlap / np.maximum(c, 1)).sum(axis=0)
    return base + merged.reshape(base.shape)


def nearswap(base, x, t):
    w = np.clip(t / np.maximum(np.abs(base - x), 1e-6), 0, 1)
    return w * x + (1 - w) * base


# Sparse task vectors (about half the positions untouched per model), so that RAM sees
# untouched, unique and shared positions.
sp_base = f32(rng.standard_normal((6, 8)))
sp_models = [f32(sp_base + np.where(rng.random((6, 8)) < 0.5, 0.2 * rng.standard_normal((6, 8)), 0)) for _ in range(3)]
SB = sp_base.astype(np.float64)
SX = [m.astype(np.float64) for m in sp_models]
case("sce", "sce", sce(B, X), )
case("sce_select_topk", "sce", sce(B, X, 0.4), global_params={"select_topk": 0.4})
case("ram_sparse", "ram", ram(SB, SX, 1e-5), inputs=sp_models, base_values=sp_base)
case("ramplus_tl_sparse", "ramplus_tl", ram(SB, SX, 1e-5, plus=True, r=0.5, alpha=0.4), inputs=sp_models, base_values=sp_base,
     global_params={"r": 0.5, "alpha": 0.4})
case("nearswap", "nearswap", nearswap(B, X[0], 0.2), models_idx=(0,), global_params={"t": 0.2})

out = os.path.join(os.path.dirname(__file__), "..", "Tests", "MergingTests", "Fixtures", "merge_expected.json")
with open(out, "w") as f:
    json.dump({"generator": "scripts/make_merge_expected.py", "cases": cases}, f, indent=0)
print(f"wrote {len(cases)} cases to {os.path.normpath(out)}")
