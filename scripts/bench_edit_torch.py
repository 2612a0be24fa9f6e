#!/usr/bin/env python3
"""ROME and MEMIT written in PyTorch, the peer of `weightsmith edit` for issue 14's per-edit wall time.

The same algorithm as weightsmith's RomeEditor / MemitEditor (Meng et al. 2022, ROME, §3; Meng et al.
2023, MEMIT, §4.3), on the same model folder (a Hugging Face checkpoint, e.g. the output of
`weightsmith convert-gguf`), the same request records (weightsmith's facts JSONL) and the same key
statistics: C = E[k kᵀ] over the corpus' lines cut into 64-token windows, at most --stats-tokens tokens,
in float64, regularised as C + 1e-3·mean(diag C)·I. With --stats-cache DIR the C computed here is
compared with weightsmith's cached one (relative Frobenius difference) and then reused, so both sides
edit with the same statistics. Per request (ROME) or per batch (MEMIT): context prefixes sampled from
the model (5 x 5 tokens, temperature 1, top-p 0.9), keys at the subject's last token, 25 Adam steps
on the value offset (lr 0.5, essence KL weight 0.0625 on "{subject} is a"), then the closed-form
update. Timed per edit (statistics excluded, context sampling included, as in weightsmith); after
each edit P(new) > P(true) on the edit prompt is checked, so a fast wrong edit does not pass.

    OPENBLAS_NUM_THREADS=1 python3 scripts/bench_edit_torch.py MODEL_DIR FACTS.jsonl CORPUS.txt \
        [--method rome|memit] [--limit N] [--layer 4] [--layers 2,3,4] [--update-weight 15000] [--stats-cache DIR]

Threads: torch.set_num_threads(OPENBLAS_NUM_THREADS), every core when unset (torch's default).
"""
import argparse, json, math, os, resource, sys, time
import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ap = argparse.ArgumentParser()
ap.add_argument("model"); ap.add_argument("requests"); ap.add_argument("corpus")
ap.add_argument("--method", default="rome", choices=["rome", "memit"])
ap.add_argument("--limit", type=int, default=5)
ap.add_argument("--split", default="test")
ap.add_argument("--layer", type=int, default=None)
ap.add_argument("--layers", default=None)
ap.add_argument("--update-weight", type=float, default=15000.0)
ap.add_argument("--stats-tokens", type=int, default=20000)
ap.add_argument("--stats-cache", default=None)
ap.add_argument("--steps", type=int, default=25)
ap.add_argument("--seed", type=int, default=0)
args = ap.parse_args()

if "OPENBLAS_NUM_THREADS" in os.environ:
    torch.set_num_threads(int(os.environ["OPENBLAS_NUM_THREADS"]))
threads = torch.get_num_threads()
torch.manual_seed(args.seed)
tok = AutoTokenizer.from_pretrained(args.model)
model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
for p in model.parameters():
    p.requires_grad_(False)
cfg = model.config
L = cfg.num_hidden_layers
layer = args.layer if args.layer is not None else (5 * L) // 32
layers = [int(x) for x in args.layers.split(",")] if args.layers else list(range(max(0, layer - 2), layer + 1))
blocks = model.model.layers


def enc(text, special=True):
    return tok(text, add_special_tokens=special)["input_ids"]


class Stop(Exception):
    pass


def capture_keys(l, batch, stop=True):
    """Inputs of block l's down_proj for a right-padded batch (B, T, I); stops the forward after block l."""
    got = {}

    def hook(mod, inp):
        got["u"] = inp[0].detach()
        if stop:
            raise Stop
    h = blocks[l].mlp.down_proj.register_forward_pre_hook(hook)
    try:
        model(torch.tensor(batch))
    except Stop:
        pass
    finally:
        h.remove()
    return got["u"]


def statistics(l):
    lines = open(args.corpus, encoding="utf-8").read().split("\n")
    windows, total = [], 0
    for text in lines:
        if not text:
            continue
        ids = enc(text)
        done = False
        for s in range(0, len(ids), 64):
            chunk = ids[s:s + 64]
            if len(chunk) < 2:
                continue
            windows.append(chunk); total += len(chunk)
            if total >= args.stats_tokens:
                done = True; break
        if done:
            break
    I = cfg.intermediate_size
    acc = torch.zeros(I, I, dtype=torch.float64)
    by_len = {}
    for w in windows:
        by_len.setdefault(len(w), []).append(w)
    with torch.no_grad():
        for n in sorted(by_len):
            ws = by_len[n]
            for i in range(0, len(ws), 8):
                u = capture_keys(l, ws[i:i + 8]).reshape(-1, I)
                acc += (u.T @ u).double()
    return acc / total, total


def regularised(C):
    n = C.shape[0]
    return C + 1e-3 * max(torch.diagonal(C).mean().item(), 1e-12) * torch.eye(n, dtype=C.dtype)


def load_cached(l):
    if not args.stats_cache:
        return None
    from safetensors.numpy import load_file
    name = f"model_layers_{l}_mlp_down_proj_weight"
    for f in sorted(os.listdir(args.stats_cache)):
        if f.startswith(f"rome-stats-{name}-") and f.endswith(".safetensors"):
            return torch.from_numpy(load_file(os.path.join(args.stats_cache, f))["moment"].astype(np.float64))
    return None


def sample_contexts():
    start = enc("")
    ids = start if start else [tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id]
    out = []
    for i in range(5):
        g = torch.Generator().manual_seed(args.seed + i)
        seq = list(ids)
        with torch.no_grad():
            for _ in range(5):
                logits = model(torch.tensor([seq])).logits[0, -1]
                p = torch.softmax(logits, -1)
                sp, si = torch.sort(p, descending=True)
                keep = torch.cumsum(sp, 0) - sp < 0.9
                sp = sp[keep] / sp[keep].sum()
                seq.append(int(si[keep][torch.multinomial(sp, 1, generator=g)]))
        t = tok.decode(seq[len(ids):]).replace("{", "").replace("}", "").replace("\n", " ").strip()
        out.append(t + ". " if t else "")
    return out


def subject_prompts(text, subject, contexts):
    end = text.rindex(subject) + len(subject)
    prompts, positions = [], []
    for c in contexts:
        ids, head = enc(c + text), enc(c + text[:end])
        pos = min(len(head), len(ids)) - 1
        while pos > 0 and (pos >= len(ids) or ids[pos] != head[pos]):
            pos -= 1
        prompts.append(ids); positions.append(max(pos, 0))
    return prompts, positions


def pad(rows):
    T = max(len(r) for r in rows)
    return [r + [0] * (T - len(r)) for r in rows]


def teacher_forced(prompts, target):
    rows = [p + target for p in prompts]
    T = max(len(r) for r in rows)
    tokens = torch.tensor([r + [0] * (T - len(r)) for r in rows])
    labels = torch.full((len(rows), T), -100)
    for b, p in enumerate(prompts):
        for j, y in enumerate(target):
            labels[b, len(p) - 1 + j] = y
    return tokens, labels


def nll_mean(logits, labels):
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def essence(subject):
    prompt = "{} is a".replace("{}", subject)
    ids = enc(prompt)
    head = enc(prompt[:prompt.index(subject) + len(subject)])
    pos = min(len(head), len(ids)) - 1
    while pos > 0 and ids[pos] != head[pos]:
        pos -= 1
    with torch.no_grad():
        p = torch.log_softmax(model(torch.tensor([ids])).logits[0, pos], -1)
    return torch.tensor([ids]), pos, p


def kl(logp, logits, pos):
    logq = torch.log_softmax(logits[0, pos], -1)
    return (logp.exp() * (logp - logq)).sum()


def target_logprob(prompt_ids, target):
    with torch.no_grad():
        lg = torch.log_softmax(model(torch.tensor([prompt_ids + target])).logits[0], -1)
    return sum(lg[len(prompt_ids) - 1 + j, y].item() for j, y in enumerate(target)) / len(target)


def efficacy(r):
    p = enc(r["prompt"].replace("{}", r["subject"]))
    return target_logprob(p, enc(r["target_new"], False)) > target_logprob(p, enc(r["ground_truth"], False))


def adam_step(opt, loss, delta, limit):
    """One Adam step on the value offset, then the clamp ‖δ‖ ≤ limit."""
    opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        n = delta.norm()
        if n > limit:
            delta.mul_(limit / n)


def rome(r, C):
    W = blocks[layer].mlp.down_proj.weight  # (O, I)
    text = r["prompt"].replace("{}", r["subject"])
    target = enc(r["target_new"], False)
    contexts = [""] + sample_contexts()
    prompts, positions = subject_prompts(text, r["subject"], contexts)
    with torch.no_grad():
        u = capture_keys(layer, pad(prompts))
        rows = torch.stack([u[b, positions[b]] for b in range(len(prompts))])
    k, mean = rows[0], rows.mean(0)
    solved = torch.linalg.solve(regularised(C), mean.double()).float() if C is not None else mean
    d = torch.dot(solved, k)
    uhat = solved / d
    v0 = W @ k
    v0n2 = max(float(v0 @ v0), 1e-12)
    ess_ids, ess_pos, ess_p = essence(r["subject"])
    tokens, labels = teacher_forced(prompts, target)
    delta = torch.zeros(W.shape[0], requires_grad=True)
    opt = torch.optim.Adam([delta], lr=0.5, eps=1e-8)
    hook = blocks[layer].mlp.down_proj.register_forward_hook(lambda m, i, o: o + (i[0] @ uhat).unsqueeze(-1) * delta)
    try:
        for step in range(1, args.steps + 1):
            nll = nll_mean(model(tokens).logits, labels)
            k_l = kl(ess_p, model(ess_ids).logits, ess_pos)
            loss = nll + 0.0625 * k_l + 1e-3 * (delta @ delta) / v0n2
            if nll.item() < 5e-2:
                break
            adam_step(opt, loss, delta, 4 * math.sqrt(v0n2))
    finally:
        hook.remove()
    with torch.no_grad():
        W += torch.outer(delta.detach(), uhat)
    return [(W, torch.outer(delta.detach(), uhat))]


def residual_hook(l, fn):
    def hook(mod, inp, out):
        h = out[0] if isinstance(out, tuple) else out
        h2 = fn(h)
        return (h2,) + tuple(out[1:]) if isinstance(out, tuple) else h2
    return blocks[l].register_forward_hook(hook)


def residual_at(l, prompt, pos):
    got = {}

    def tap(x):
        got["h"] = x[0, pos].detach().clone()
        return x
    h = residual_hook(l, tap)
    try:
        with torch.no_grad():
            model(torch.tensor([prompt]))
    finally:
        h.remove()
    return got["h"]


def memit(records, stats):
    last = layers[-1]
    contexts = [""] + sample_contexts()
    per = []
    for r in records:
        text = r["prompt"].replace("{}", r["subject"])
        per.append(subject_prompts(text, r["subject"], contexts))
    targets = []
    for r, (prompts, positions) in zip(records, per):
        target = enc(r["target_new"], False)
        tokens, labels = teacher_forced(prompts, target)
        T = tokens.shape[1]
        h = residual_at(last, prompts[0], positions[0])
        hn2 = max(float(h @ h), 1e-12)
        ess_ids, ess_pos, ess_p = essence(r["subject"])
        delta = torch.zeros(h.shape[0], requires_grad=True)
        opt = torch.optim.Adam([delta], lr=0.5, eps=1e-8)
        rows = [(b, positions[b]) for b in range(len(prompts))]

        def add_rows(x, rows=rows):
            x = x.clone()
            for b, p in rows:
                x[b, p] = x[b, p] + delta
            return x
        for step in range(1, args.steps + 2):
            hk = residual_hook(last, add_rows)
            try:
                nll = nll_mean(model(tokens).logits, labels)
            finally:
                hk.remove()
            hk = residual_hook(last, lambda x: add_rows(x, [(0, ess_pos)]))
            try:
                k_l = kl(ess_p, model(ess_ids).logits, ess_pos)
            finally:
                hk.remove()
            # The reference's weight decay (norm over squared norm) and its early stop on the whole loss.
            loss = nll + 0.0625 * k_l + 0.5 * delta.norm() / hn2
            if loss.item() < 5e-2 or step > args.steps:
                break
            adam_step(opt, loss, delta, 0.75 * math.sqrt(hn2))
        targets.append(h + delta.detach())
    Z = torch.stack(targets)
    edits = []
    for li, l in enumerate(layers):
        W = blocks[l].mlp.down_proj.weight
        with torch.no_grad():
            K = []
            for prompts, positions in per:
                u = capture_keys(l, pad(prompts))
                ks = torch.stack([u[b, positions[b]] for b in range(len(prompts))])
                # The reference's mean over kinds of context: the bare prompt 1/2, the contexts 1/2.
                K.append(0.5 * ks[0] + 0.5 * ks[1:].mean(0) if len(prompts) > 1 else ks[0])
            K = torch.stack(K).double()  # (n, I)
            cur = torch.stack([residual_at(last, p[0], pos[0]) for p, pos in per])
            R = (Z - cur).double() / (len(layers) - li)  # (n, O)
            C = stats[l]
            A = args.update_weight * (regularised(C) if C is not None else torch.eye(K.shape[1], dtype=torch.float64)) + K.T @ K
            X = torch.linalg.solve(A, K.T)  # (I, n)
            dW = (R.T @ X.T).float()  # (O, I)
            W += dW
            edits.append((W, dW))
    return edits


recs = [json.loads(l) for l in open(args.requests) if l.strip()]
recs = [r for r in recs if r.get("split", args.split) == args.split][:args.limit]
need = [layer] if args.method == "rome" else layers
stats, notes = {}, []
for l in need:
    t = time.time()
    C, n = statistics(l)
    took = time.time() - t
    cached = load_cached(l)
    if cached is not None:
        diff = (torch.linalg.norm(C - cached) / torch.linalg.norm(cached)).item()
        notes.append(f"layer {l}: C from {n} tokens in {took:.1f} s; relative difference from weightsmith's cached C {diff:.2e}")
        C = cached
    else:
        notes.append(f"layer {l}: C from {n} tokens in {took:.1f} s")
    stats[l] = C
for s in notes:
    print(s)

hits = 0
if args.method == "rome":
    times = []
    for r in recs:
        t = time.time()
        edits = rome(r, stats[layer])
        times.append(time.time() - t)
        hits += efficacy(r)
        with torch.no_grad():
            for W, d in edits:
                W -= d
    per_edit = sum(times) / len(times)
    what = f"ROME layer {layer}, {len(recs)} edits one at a time"
else:
    t = time.time()
    edits = memit(recs, stats)
    took = time.time() - t
    hits = sum(efficacy(r) for r in recs)
    per_edit = took / len(recs)
    what = f"MEMIT layers {','.join(map(str, layers))}, {len(recs)} facts in one edit ({took:.1f} s), λ = {args.update_weight:g}"
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"torch {torch.__version__} (threads={threads}): {what}: {per_edit:.2f} s per edit; "
      f"efficacy P(new) > P(true) {hits}/{len(recs)}; peak RSS {peak:.0f} MB")
