#!/usr/bin/env python3
"""The peer of `weightsmith soup --learned` for BENCHMARKS.md: the learned soup (Wortsman et al.
2022, §3) written with transformers + torch, computing what weightsmith computes per step: the
mixing coefficients α = softmax(β), the candidate θ = Σ α_i x_i, the held-out loss (token-mean
completion NLL over all examples, micro-batches of 16 with right padding) and its gradient with
respect to θ by backpropagation, dL/dα_i = <dL/dθ, x_i>, dL/dβ through the softmax, one Adam
step (lr 0.1). Steps 0..N are N+1 loss-and-gradient evaluations and N updates, as in weightsmith.

Usage: python3 scripts/bench_learned_soup_torch.py HELDOUT.jsonl --steps N ING1 ING2 ...
Prints the loss per step, seconds per step (after the first, which includes warm-up), the
wall time and the peak RSS.
"""
import json
import math
import resource
import sys
import time

import torch
from safetensors.torch import load_file
from torch.func import functional_call
from transformers import AutoTokenizer, LlamaForCausalLM


def main():
    t0 = time.time()
    args = sys.argv[1:]
    steps = 5
    if "--steps" in args:
        i = args.index("--steps")
        steps = int(args[i + 1])
        del args[i:i + 2]
    data, paths = args[0], args[1:]
    rows = [json.loads(l) for l in open(data) if l.strip()]
    tok = AutoTokenizer.from_pretrained(paths[0])
    enc = [(tok(r["prompt"])["input_ids"], tok(r["completion"], add_special_tokens=False)["input_ids"]) for r in rows]
    total = sum(len(c) for _, c in enc)
    model = LlamaForCausalLM.from_pretrained(paths[0], dtype=torch.float32)
    model.train(False)
    sds = [load_file(f"{p}/model.safetensors") for p in paths]
    names = [k for k in sds[0]]

    def loss_and_grad(theta):
        for t in theta.values():
            t.grad = None
        loss = 0.0
        for s in range(0, len(enc), 16):
            chunk = enc[s:s + 16]
            T = max(len(p) + len(c) for p, c in chunk)
            ids = torch.zeros(len(chunk), T, dtype=torch.long)
            mask = torch.zeros(len(chunk), T, dtype=torch.long)
            for b, (p, c) in enumerate(chunk):
                ids[b, :len(p) + len(c)] = torch.tensor(p + c)
                mask[b, :len(p) + len(c)] = 1
            logits = functional_call(model, theta, args=(), kwargs={"input_ids": ids, "attention_mask": mask}).logits
            logp = torch.log_softmax(logits, dim=-1)
            nll = 0
            for b, (p, c) in enumerate(chunk):
                pos = torch.arange(len(p) - 1, len(p) - 1 + len(c))
                nll = nll - logp[b, pos, torch.tensor(c)].sum()
            (nll / total).backward()
            loss += nll.item() / total
        return loss

    n = len(paths)
    beta = torch.zeros(n, dtype=torch.float64)
    m = torch.zeros(n, dtype=torch.float64)
    v = torch.zeros(n, dtype=torch.float64)
    times = []
    for step in range(steps + 1):
        ts = time.time()
        alpha = torch.softmax(beta, 0)
        with torch.no_grad():
            theta = {k: sum(float(alpha[i]) * sds[i][k] for i in range(n)).requires_grad_(True) for k in names}
        loss = loss_and_grad(theta)
        with torch.no_grad():
            d_alpha = torch.tensor([sum(float((theta[k].grad.double() * sds[i][k].double()).sum()) for k in names)
                                    for i in range(n)], dtype=torch.float64)
        d_beta = alpha * (d_alpha - (alpha * d_alpha).sum())
        times.append(time.time() - ts)
        print(f"step {step}: loss {loss:.4f}, |dL/dβ| {float(d_beta.norm()):.4g}, {times[-1]:.2f}s", flush=True)
        if step == steps:
            break
        t = step + 1
        m = 0.9 * m + 0.1 * d_beta
        v = 0.999 * v + 0.001 * d_beta * d_beta
        beta = beta - 0.1 * (m / (1 - 0.9 ** t)) / ((v / (1 - 0.999 ** t)).sqrt() + 1e-8)
    later = times[1:] or times
    print(f"coefficients: {[round(float(a), 4) for a in torch.softmax(beta, 0)]}")
    print(f"seconds per step (steps 1..{steps}): {sum(later) / len(later):.2f}, steps per second {len(later) / sum(later):.4f}")
    print(f"wall {time.time() - t0:.1f}s, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
