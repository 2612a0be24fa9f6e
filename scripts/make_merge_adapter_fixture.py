#!/usr/bin/env python3
"""Fixture for `weightsmith merge-adapter` (Tests/TransformerTests/Fixtures/merge-adapter/):

  base/      a tiny random Llama (transformers, float32, untied head), save_pretrained
  adapter/   a PEFT LoRA adapter on it: r 4, alpha 8, every linear layer, rank_pattern and
             alpha_pattern for one module, init_lora_weights=False (non-zero B), lm_head in
             modules_to_save; base_model_name_or_path = "../base"
  merged/    PEFT's merge_and_unload() of the adapter, saved with save_pretrained

Deterministic (seed 0). Needs torch, transformers, peft (pip install peft; torch from /opt/wheels).
"""
import json
import os
import shutil

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "TransformerTests", "Fixtures", "merge-adapter")


def main():
    torch.manual_seed(0)
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=False, torch_dtype="float32")
    model = LlamaForCausalLM(config).eval()
    base_dir = os.path.join(OUT, "base")
    model.save_pretrained(base_dir, safe_serialization=True)

    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, init_lora_weights=False,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                      rank_pattern={"model.layers.1.mlp.down_proj": 2}, alpha_pattern={"model.layers.1.mlp.down_proj": 3},
                      modules_to_save=["lm_head"], task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lora)
    # modules_to_save starts as a copy of lm_head: make it differ.
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "modules_to_save" in name:
                p.add_(torch.randn_like(p) * 0.1)
    adapter_dir = os.path.join(OUT, "adapter")
    peft_model.save_pretrained(adapter_dir, safe_serialization=True)
    cfg_path = os.path.join(adapter_dir, "adapter_config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["base_model_name_or_path"] = "../base"
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    for extra in ["README.md"]:
        p = os.path.join(adapter_dir, extra)
        if os.path.exists(p):
            os.remove(p)

    merged = peft_model.merge_and_unload()
    merged.save_pretrained(os.path.join(OUT, "merged"), safe_serialization=True)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
