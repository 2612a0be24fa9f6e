#!/usr/bin/env python3
"""The peer of `weightsmith soup --greedy` for BENCHMARKS.md: the greedy soup (Wortsman et al.
2022, Recipe 1) written the usual way with transformers + torch: load every ingredient's state
dict, evaluate each, then average state dicts, load, evaluate, repeat. Same metric as weightsmith
(mean completion NLL; exact match = every completion token is the argmax), batches of 16 with
right padding.

Usage: python3 scripts/bench_soup_torch.py HELDOUT.jsonl ING1 ING2 ... 
Prints the table, the wall time and the peak RSS.
"""
import json
import resource
import sys
import time

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, LlamaForCausalLM


def main():
    t0 = time.time()
    data, paths = sys.argv[1], sys.argv[2:]
    rows = [json.loads(l) for l in open(data) if l.strip()]
    tok = AutoTokenizer.from_pretrained(paths[0])
    enc = [(tok(r["prompt"])["input_ids"], tok(r["completion"], add_special_tokens=False)["input_ids"]) for r in rows]
    model = LlamaForCausalLM.from_pretrained(paths[0], dtype=torch.float32).eval()
    sds = [load_file(f"{p}/model.safetensors") for p in paths]

    @torch.no_grad()
    def evaluate():
        nll, tokens, exact = 0.0, 0, 0
        for s in range(0, len(enc), 16):
            chunk = enc[s:s + 16]
            T = max(len(p) + len(c) for p, c in chunk)
            ids = torch.zeros(len(chunk), T, dtype=torch.long)
            mask = torch.zeros(len(chunk), T, dtype=torch.long)
            for b, (p, c) in enumerate(chunk):
                ids[b, :len(p) + len(c)] = torch.tensor(p + c)
                mask[b, :len(p) + len(c)] = 1
            logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.double(), dim=-1)
            for b, (p, c) in enumerate(chunk):
                pos = torch.arange(len(p) - 1, len(p) - 1 + len(c))
                tgt = torch.tensor(c)
                nll -= logp[b, pos, tgt].sum().item()
                tokens += len(c)
                exact += int(bool((logp[b, pos].argmax(-1) == tgt).all()))
        return nll / tokens, exact / len(enc)

    def soup(members):
        avg = {k: sum(sds[i][k] for i in members) / len(members) for k in sds[0]}
        model.load_state_dict(avg, strict=False)
        return evaluate()

    own = [soup([i]) for i in range(len(paths))]
    order = sorted(range(len(paths)), key=lambda i: (own[i][0], i))
    kept, cur = [order[0]], own[order[0]]
    for i in order[1:]:
        s = soup(kept + [i])
        keep = s[0] <= cur[0]
        print(f"+ {paths[i]}: soup NLL {s[0]:.4f} EM {s[1]:.3f} -> {'kept' if keep else 'dropped'}")
        if keep:
            kept.append(i)
            cur = s
    for i in range(len(paths)):
        print(f"{paths[i]}: NLL {own[i][0]:.4f} EM {own[i][1]:.3f}")
    uniform = soup(list(range(len(paths))))
    print(f"uniform: NLL {uniform[0]:.4f} EM {uniform[1]:.3f}")
    print(f"greedy ({len(kept)} of {len(paths)}): NLL {cur[0]:.4f} EM {cur[1]:.3f}")
    print(f"torch threads {torch.get_num_threads()}, wall {time.time() - t0:.1f} s, "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
