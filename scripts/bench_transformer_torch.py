#!/usr/bin/env python3
"""PyTorch CPU `transformers` throughput on SmolLM2 (the GGUF, dequantised to Float32 by
transformers), matching RealModelBenchmarks.testThroughput: load time, prefill 1x128 and 8x128
(full logits), greedy generation of 128 new tokens with the KV cache. Threads: OPENBLAS_NUM_THREADS.

    OPENBLAS_NUM_THREADS=2 python3 scripts/bench_transformer_torch.py MODEL.gguf
"""
import os, sys, time
import torch
from transformers import AutoModelForCausalLM

threads = int(os.environ.get("OPENBLAS_NUM_THREADS", "1"))
torch.set_num_threads(threads)
path = sys.argv[1]
t0 = time.time()
model = AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(path)), gguf_file=os.path.basename(path),
                                             torch_dtype=torch.float32).eval()
load = time.time() - t0
g = torch.Generator().manual_seed(7)
x1 = torch.randint(100, 40000, (1, 128), generator=g)
x8 = torch.randint(100, 40000, (8, 128), generator=g)


def best(reps, f):
    m = float("inf")
    for _ in range(reps):
        s = time.time(); f(); m = min(m, time.time() - s)
    return m


with torch.no_grad():
    model(x1)
    p1 = best(3, lambda: model(x1))
    p8 = best(2, lambda: model(x8))
    prompt = x1[:, :8]

    def gen():
        model.generate(prompt, max_new_tokens=128, min_new_tokens=128, do_sample=False)

    # Subtract the prompt's prefill to get per-token generation time.
    pre = best(3, lambda: model(prompt))
    g128 = best(2, gen)
print(f"transformers {__import__('transformers').__version__} torch {torch.__version__} SmolLM2 (threads={threads}): "
      f"load {load:.2f} s, prefill 1x128 {128 / p1:.1f} tok/s, 8x128 {1024 / p8:.1f} tok/s, "
      f"generation {127 / (g128 - pre):.1f} tok/s")
