#!/usr/bin/env python3
"""Reference logits of a GGUF model from PyTorch `transformers` (which dequantises the GGUF and
undoes llama.cpp's Q/K permutation itself), for the opt-in real-model test.

    python3 scripts/smollm2_reference.py MODEL.gguf OUT.safetensors "prompt" ["prompt" ...]

Writes input_ids_<i> (as F32) and logits_<i> (T, V) for every prompt, tokenised by transformers.
"""
import os, sys
import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

torch.set_num_threads(int(os.environ.get("OPENBLAS_NUM_THREADS", "1")))
path, out, prompts = sys.argv[1], sys.argv[2], sys.argv[3:]
d, f = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32).eval()
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
tensors = {}
with torch.no_grad():
    for i, p in enumerate(prompts):
        ids = tok(p, return_tensors="pt").input_ids
        tensors[f"input_ids_{i}"] = ids[0].float()
        tensors[f"logits_{i}"] = model(ids).logits[0].float().contiguous()
save_file(tensors, out)
