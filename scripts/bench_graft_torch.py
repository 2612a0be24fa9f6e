#!/usr/bin/env python3
"""The peer of `weightsmith graft --train` for BENCHMARKS.md: the trained graft of Panigrahi et al.
2023 (§3, "Optimization") written with transformers + torch, computing what weightsmith computes per
step: the magnitude base patch b (global top-k of |tuned - base| over the eligible tensors: every
tensor but embeddings, lm_head and norms), logits S ~ U[0, 1) (torch's generator, so not the same
draw as weightsmith's), gamma = b + (1 - 2b) sigmoid(S - c), the model at theta(gamma) = base + gamma * tau,
the mean completion NLL over the training examples (micro-batches of 8, right padding) and its
gradient by backpropagation, dL/dS = dL/dtheta * tau * (1 - 2b) * sigmoid'(S - c), one plain step
S -= lr * dL/dS, then the rounded mask (gamma > 0.5) scored by greedy exact match and mean NLL on
the training and validation examples (batches of 16).

Usage: python3 scripts/bench_graft_torch.py BASE TUNED TRAIN.jsonl VALIDATION.jsonl --sparsity 0.01 --steps N
Prints per step the relaxed loss, the rounded mask's size and scores and the seconds per step,
then the mean seconds per step (steps 2..N), the wall time and the peak RSS.
"""
import json
import resource
import sys
import time

import torch
from transformers import AutoTokenizer, LlamaForCausalLM


def load_pairs(path, tok):
    out = []
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        o = json.loads(line)
        p = tok(o["prompt"], add_special_tokens=True)["input_ids"]
        c = tok(o["completion"], add_special_tokens=False)["input_ids"]
        out.append((p, c))
    return out


def batch(pairs, pad):
    T = max(len(p) + len(c) for p, c in pairs)
    ids, tg = [], []
    for p, c in pairs:
        x = p + c
        t = [-100] * T
        for j in range(len(c)):
            t[len(p) - 1 + j] = c[j]
        ids.append(x + [pad] * (T - len(x)))
        tg.append(t)
    return torch.tensor(ids), torch.tensor(tg)


def nll_sum(model, pairs, pad, bs):
    total, n = 0.0, 0
    for i in range(0, len(pairs), bs):
        ids, tg = batch(pairs[i:i + bs], pad)
        logits = model(input_ids=ids).logits
        lp = torch.log_softmax(logits.float(), -1)
        mask = tg >= 0
        total = total - lp.gather(-1, tg.clamp(min=0).unsqueeze(-1)).squeeze(-1)[mask].sum()
        n += int(mask.sum())
    return total, n


@torch.no_grad()
def score(model, pairs, pad):
    em, nll, n = 0, 0.0, 0
    for i in range(0, len(pairs), 16):
        chunk = pairs[i:i + 16]
        ids, tg = batch(chunk, pad)
        logits = model(input_ids=ids).logits.float()
        lp = torch.log_softmax(logits, -1)
        for b in range(len(chunk)):
            m = tg[b] >= 0
            pred = logits[b][m].argmax(-1)
            em += int(bool((pred == tg[b][m]).all()))
            nll -= float(lp[b][m].gather(-1, tg[b][m].unsqueeze(-1)).sum())
            n += int(m.sum())
    return em / len(pairs), nll / n


def main():
    t0 = time.time()
    args = sys.argv[1:]
    def opt(name, default):
        if name in args:
            i = args.index(name)
            v = args[i + 1]
            del args[i:i + 2]
            return v
        return default
    sparsity = float(opt("--sparsity", "0.01"))
    steps = int(opt("--steps", "3"))
    lr, c = 1e7, 10.0
    base_dir, tuned_dir, train_path, val_path = args
    tok = AutoTokenizer.from_pretrained(base_dir)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    train, val = load_pairs(train_path, tok), load_pairs(val_path, tok)
    model = LlamaForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32, attn_implementation="eager")
    tuned = LlamaForCausalLM.from_pretrained(tuned_dir, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    excluded = ["embed", "lm_head", "norm"]
    names = [n for n, _ in model.named_parameters() if not any(e in n for e in excluded)]
    params = dict(model.named_parameters())
    base = {n: params[n].detach().clone() for n in names}
    tp = dict(tuned.named_parameters())
    tau = {n: (tp[n].detach() - base[n]) for n in names}
    del tuned, tp
    for n, p in model.named_parameters():
        p.requires_grad_(n in names)
    flat = torch.cat([tau[n].abs().flatten() for n in names])
    k = int(round(sparsity * flat.numel()))
    thr = torch.topk(flat, k).values.min()
    patch = {n: (tau[n].abs() >= thr).float() for n in names}
    del flat
    g = torch.Generator().manual_seed(0)
    S = {n: torch.rand(base[n].shape, generator=g) for n in names}

    def gamma(n):
        return patch[n] + (1 - 2 * patch[n]) * torch.sigmoid(S[n] - c)

    def set_theta(mask_fn):
        with torch.no_grad():
            for n in names:
                params[n].copy_(base[n] + mask_fn(n) * tau[n])

    times = []
    for step in range(1, steps + 1):
        ts = time.time()
        set_theta(gamma)
        model.zero_grad(set_to_none=True)
        scored = sum(len(cc) for _, cc in train)
        loss_total = 0.0
        for i in range(0, len(train), 8):
            total, _ = nll_sum(model, train[i:i + 8], pad, 8)
            (total / scored).backward()
            loss_total += float(total.detach())
        with torch.no_grad():
            for n in names:
                s = torch.sigmoid(S[n] - c)
                S[n] -= lr * params[n].grad * tau[n] * (1 - 2 * patch[n]) * s * (1 - s)
        set_theta(lambda n: (gamma(n) > 0.5).float())
        kept = int(sum(int((gamma(n) > 0.5).sum()) for n in names))
        te, tn = score(model, train, pad)
        ve, vn = score(model, val, pad)
        dt = time.time() - ts
        times.append(dt)
        print(f"step {step}: relaxed loss {loss_total / scored:.4f}, rounded k = {kept}, train EM {te:.3f}, validation EM {ve:.3f}, {dt:.2f}s", flush=True)
    tail = times[1:] or times
    print(f"torch {torch.__version__} (threads={torch.get_num_threads()}): k = {k}, seconds per step (steps 2..{steps}): {sum(tail) / len(tail):.2f}")
    print(f"wall {time.time() - t0:.1f}s, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")


if __name__ == "__main__":
    main()
