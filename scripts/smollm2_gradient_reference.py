#!/usr/bin/env python3
"""Loss and selected parameter gradients of SmolLM2-135M (the GGUF loaded by transformers, in
Float64) on a seeded 2 x 32 random-token batch (causal LM loss, every next token), for
TrainingBenchmarks.testGradientParityOnSmolLM2. Writes OUT (safetensors): input_ids (F32),
loss (1), grad.<name> for the names listed below.

    python3 scripts/smollm2_gradient_reference.py MODEL.gguf OUT.safetensors
"""
import os, sys
import torch
from transformers import AutoModelForCausalLM
from safetensors.torch import save_file

NAMES = ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.layers.0.input_layernorm.weight",
         "model.layers.15.mlp.down_proj.weight", "model.layers.29.self_attn.o_proj.weight", "model.layers.29.mlp.gate_proj.weight",
         "model.norm.weight"]
path, out = sys.argv[1], sys.argv[2]
torch.set_num_threads(int(os.environ.get("OPENBLAS_NUM_THREADS", "2")))
model = AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(path)), gguf_file=os.path.basename(path),
                                             torch_dtype=torch.float32, attn_implementation="eager").double()
g = torch.Generator().manual_seed(3)
ids = torch.randint(100, 40000, (2, 32), generator=g)
loss = model(ids, labels=ids).loss
loss.backward()
params = dict(model.named_parameters())
res = {"input_ids": ids.float(), "loss": loss.detach().float().reshape(1)}
for n in NAMES:
    res["grad." + n] = params[n].grad.float().contiguous()
save_file(res, out)
print("loss", loss.item())
