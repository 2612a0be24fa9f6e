#!/usr/bin/env python3
"""Loss and selected parameter gradients of SmolLM2-135M (the GGUF loaded by transformers) for
TrainingBenchmarks.testGradientParityOnSmolLM2, on two 2 x 32 batches (causal LM loss, every
next token): PREFIX "text" = an English paragraph tokenized by the model's tokenizer, PREFIX
"random" = seeded random ids in 100..<40000. Writes OUT (safetensors) with, per prefix:
  {prefix}.input_ids (F32), {prefix}.loss (1)        reference in Float64
  {prefix}.grad.<name>                               reference gradients, Float64 everywhere
  {prefix}.grad32.<name>                             PyTorch's own Float32 gradients
transformers' LlamaRMSNorm computes in Float32 even in a Float64 model; the Float64 run
replaces its forward with the same formula in Float64 so the reference is Float64 throughout.

    python3 scripts/smollm2_gradient_reference.py MODEL.gguf OUT.safetensors
"""
import os, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.models.llama import modeling_llama
from safetensors.torch import save_file

NAMES = ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.layers.0.input_layernorm.weight",
         "model.layers.15.mlp.down_proj.weight", "model.layers.29.self_attn.o_proj.weight", "model.layers.29.mlp.gate_proj.weight",
         "model.norm.weight"]
TEXT = ("The history of the city begins with a small settlement on the river, where traders met to exchange salt, "
        "wool and grain. Over the centuries the market grew into a town, the town built walls and a bridge, and the "
        "bridge brought travellers from every direction. Today the old quarter still follows the medieval streets, and visitors walk along the water "
        "to the square where the market is held every Saturday morning.")
path, out = sys.argv[1], sys.argv[2]
torch.set_num_threads(int(os.environ.get("OPENBLAS_NUM_THREADS", "2")))
d, f = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
text_ids = torch.tensor(tok(TEXT, add_special_tokens=False)["input_ids"][:64]).reshape(2, 32)
random_ids = torch.randint(100, 40000, (2, 32), generator=torch.Generator().manual_seed(3))
f32_norm = modeling_llama.LlamaRMSNorm.forward


def f64_norm(self, h):
    return self.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))


res = {}
for dtype, key in [(torch.float64, "grad."), (torch.float32, "grad32.")]:
    modeling_llama.LlamaRMSNorm.forward = f64_norm if dtype == torch.float64 else f32_norm
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32, attn_implementation="eager").to(dtype)
    for prefix, ids in [("text", text_ids), ("random", random_ids)]:
        model.zero_grad(set_to_none=True)
        loss = model(ids, labels=ids).loss
        loss.backward()
        params = dict(model.named_parameters())
        if dtype == torch.float64:
            res[f"{prefix}.input_ids"] = ids.float()
            res[f"{prefix}.loss"] = loss.detach().float().reshape(1)
            print(prefix, "loss", loss.item())
        for n in NAMES:
            res[f"{prefix}.{key}{n}"] = params[n].grad.float().contiguous()
    del model
save_file(res, out)
