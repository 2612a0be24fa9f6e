#!/usr/bin/env python3
"""Checks that an adapter written by `weightsmith extract-lora` loads in PEFT and that PEFT's
merged model equals base + the rank-r truncated SVD of (tuned - base), computed here in numpy.
Usage: python3 scripts/check_extracted_lora.py BASE TUNED ADAPTER RANK"""
import sys
import numpy as np
import torch
from transformers import AutoModelForCausalLM
from peft import PeftModel
from safetensors.numpy import load_file

base_dir, tuned_dir, adapter_dir, rank = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
peft_model = PeftModel.from_pretrained(model, adapter_dir)
merged = {k: v.detach().numpy() for k, v in peft_model.merge_and_unload().state_dict().items()}
base = load_file(f"{base_dir}/model.safetensors")
tuned = load_file(f"{tuned_dir}/model.safetensors")
worst = 0.0
n = 0
for k, w0 in base.items():
    if w0.ndim != 2 or "embed" in k or not np.any(tuned[k] != w0):
        continue
    d = tuned[k].astype(np.float64) - w0.astype(np.float64)
    u, s, vt = np.linalg.svd(d, full_matrices=False)
    r = min(rank, *d.shape)
    approx = (u[:, :r] * s[:r]) @ vt[:r]
    got = merged[k].astype(np.float64) - w0.astype(np.float64)
    err = np.abs(got - approx).max() / max(np.abs(approx).max(), 1e-30)
    worst = max(worst, err)
    n += 1
print(f"PEFT loaded {adapter_dir}: {n} merged matrices match base + rank-{rank} SVD of the update; max relative error {worst:.2e}")
sys.exit(0 if worst < 1e-4 and n > 0 else 1)
