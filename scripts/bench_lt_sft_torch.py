#!/usr/bin/env python3
"""The peer of `weightsmith finetune --mode lt-sft` for BENCHMARKS.md: LT-SFT (Ansell et al. 2022, §3),
one iteration, written with transformers + torch, doing what weightsmith does: phase 1 fine-tunes every
eligible parameter (every tensor but embeddings, lm_head and norms) from theta0 with AdamW (weight decay 0,
cosine schedule from the peak lr, global-norm clipping 1.0), micro-batches of B prompt/completion pairs
(right padding, loss on completion tokens); the K = round(density x N) entries with the largest
|theta1 - theta0| are selected by one global threshold; the model is reset to theta0; phase 2 fine-tunes only
those entries with a fresh AdamW and schedule (gradients multiplied by the mask, so nothing outside it
moves); the result is the sparse difference theta2 - theta0 at the selected entries (not written).

Usage: python3 scripts/bench_lt_sft_torch.py BASE DATA.jsonl --steps N --batch-size B --density D [--lr LR]
Prints each phase's loss per step and time, the selection, the total wall time and the peak RSS.
"""
import json
import math
import random
import resource
import sys
import time

import torch
from transformers import AutoTokenizer, LlamaForCausalLM


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
    steps = int(opt("--steps", "10"))
    bs = int(opt("--batch-size", "8"))
    density = float(opt("--density", "0.01"))
    lr = float(opt("--lr", "1e-4"))
    base_dir, data_path = args
    tok = AutoTokenizer.from_pretrained(base_dir)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    pairs = []
    for line in open(data_path):
        if line.strip():
            o = json.loads(line)
            pairs.append((tok(o["prompt"], add_special_tokens=True)["input_ids"], tok(o["completion"], add_special_tokens=False)["input_ids"]))
    model = LlamaForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32, attn_implementation="eager")
    model.train()
    excluded = ["embed", "lm_head", "norm"]
    params = dict(model.named_parameters())
    names = [n for n in params if not any(e in n for e in excluded)]
    for n, p in params.items():
        p.requires_grad_(n in names)
    theta0 = {n: params[n].detach().clone() for n in names}
    rng = random.Random(0)

    def batches():
        order = []
        while True:
            if not order:
                order = list(range(len(pairs)))
                rng.shuffle(order)
            chunk = [pairs[order.pop()] for _ in range(min(bs, len(order)))]
            T = max(len(p) + len(c) for p, c in chunk)
            ids, tg = [], []
            for p, c in chunk:
                x = p + c
                t = [-100] * T
                for j in range(len(c)):
                    t[len(p) - 1 + j] = c[j]
                ids.append(x + [pad] * (T - len(x)))
                tg.append(t)
            yield torch.tensor(ids), torch.tensor(tg)

    def phase(label, mask):
        opt_ = torch.optim.AdamW([params[n] for n in names], lr=lr, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt_, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
        gen = batches()
        ts = time.time()
        for step in range(1, steps + 1):
            ids, tg = next(gen)
            logits = model(input_ids=ids).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tg.reshape(-1), ignore_index=-100)
            opt_.zero_grad(set_to_none=True)
            loss.backward()
            if mask is not None:
                for n in names:
                    params[n].grad.mul_(mask[n])
            torch.nn.utils.clip_grad_norm_([params[n] for n in names], 1.0)
            opt_.step()
            sched.step()
            if step == 1 or step == steps or step % max(1, steps // 5) == 0:
                print(f"{label} step {step}/{steps}: loss {float(loss):.4f}", flush=True)
        return time.time() - ts

    t1 = phase("phase 1", None)
    with torch.no_grad():
        moved = torch.cat([(params[n] - theta0[n]).abs().flatten() for n in names])
        k = int(round(density * moved.numel()))
        thr = torch.topk(moved, k).values.min()
        del moved
        mask = {n: ((params[n] - theta0[n]).abs() >= thr).float() for n in names}
        kept = int(sum(int(m.sum()) for m in mask.values()))
        for n in names:
            params[n].copy_(theta0[n])
    t2 = phase("phase 2", mask)
    with torch.no_grad():
        outside = int(sum(int(((params[n] != theta0[n]) & (mask[n] == 0)).sum()) for n in names))
    print(f"torch {torch.__version__} (threads={torch.get_num_threads()}): phase 1 {t1:.1f}s, phase 2 {t2:.1f}s; "
          f"selected {kept} of {sum(theta0[n].numel() for n in names)} (k = {k}); entries moved outside the mask: {outside}")
    print(f"wall {time.time() - t0:.1f}s, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")


if __name__ == "__main__":
    main()
