#!/usr/bin/env python3
"""Writes the small demo checkpoints used by `weightsmith spectrum/compare/extract-lora`, the
README demo, notebooks-text/03-lora-vs-full.md and the Spectral tests.

  fixtures/demo/base/     a tiny Llama-architecture model (hidden 64, 2 layers, vocab 256),
                          "pre-trained" briefly on a mixture of synthetic sequence tasks
  fixtures/demo/lora-a/   a PEFT rank-8 LoRA (alpha 16, all linear layers) fine-tuned on task A
  fixtures/demo/full-a/   a full fine-tune of the same base on the same task A
  Tests/SpectralTests/Fixtures/peft-variants/   small adapters exercising rsLoRA, rank_pattern,
                          alpha_pattern and fan_in_fan_out, with PEFT's own merged weights

Task A ("add-7"): sequences x_{t+1} = (x_t + 7) mod 200 after a marker token 250, i.e. a
rule the base model has not seen. Deterministic (seeded; CPU; torch.use_deterministic_algorithms).
Usage: python3 scripts/make_spectral_fixtures.py   (needs torch, transformers, peft, safetensors)
"""
import json, os, shutil, sys
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "fixtures", "demo")
VARIANTS = os.path.join(ROOT, "Tests", "SpectralTests", "Fixtures", "peft-variants")
torch.manual_seed(0)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(2)
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SEQ = 32


def config():
    return LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                       rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
                       bos_token_id=254, eos_token_id=255, pad_token_id=None)


def pretrain_batch(g, n):
    """A mixture of rules, each in context: affine progressions mod 200, repeats of short
    motifs, and a 2nd-order recurrence. Teaches the model generic in-context structure."""
    out = torch.empty(n, SEQ, dtype=torch.long)
    for i in range(n):
        kind = int(torch.randint(0, 3, (1,), generator=g))
        if kind == 0:
            a = int(torch.randint(1, 6, (1,), generator=g)); x = int(torch.randint(0, 200, (1,), generator=g))
            seq = [(x + a * t) % 200 for t in range(SEQ)]
        elif kind == 1:
            L = int(torch.randint(2, 6, (1,), generator=g))
            motif = torch.randint(0, 200, (L,), generator=g).tolist()
            seq = [motif[t % L] for t in range(SEQ)]
        else:
            x0, x1 = torch.randint(0, 200, (2,), generator=g).tolist()
            seq = [x0, x1]
            while len(seq) < SEQ:
                seq.append((seq[-1] + seq[-2]) % 200)
        out[i] = torch.tensor(seq)
    return out


def task_a_batch(g, n):
    """Task A: marker 250, then x, x+7, x+14, ... mod 200."""
    out = torch.empty(n, SEQ, dtype=torch.long)
    for i in range(n):
        x = int(torch.randint(0, 200, (1,), generator=g))
        out[i] = torch.tensor([250] + [(x + 7 * t) % 200 for t in range(SEQ - 1)])
    return out


def train(model, params, batch_fn, steps, lr, seed, label):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    model.train()
    for step in range(steps):
        x = batch_fn(g, 32)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(); loss.backward(); opt.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"  {label} step {step:4d} loss {loss.item():.3f}", flush=True)
    model.eval()
    return loss.item()


def eval_loss(model, batch_fn, seed=1234):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x = batch_fn(g, 64)
        return model(input_ids=x, labels=x).loss.item()


def clean(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)


def main():
    cfg = config()
    print("pre-training the base")
    base = LlamaForCausalLM(cfg)
    train(base, base.parameters(), pretrain_batch, 600, 3e-3, 1, "base")
    clean(os.path.join(DEMO, "base"))
    base.save_pretrained(os.path.join(DEMO, "base"), safe_serialization=True)
    base_state = {k: v.clone() for k, v in base.state_dict().items()}

    print("full fine-tune on task A")
    full = LlamaForCausalLM(cfg); full.load_state_dict(base_state)
    train(full, full.parameters(), task_a_batch, 300, 5e-4, 2, "full")
    clean(os.path.join(DEMO, "full-a"))
    full.save_pretrained(os.path.join(DEMO, "full-a"), safe_serialization=True)

    print("LoRA r=8 fine-tune on task A")
    lbase = LlamaForCausalLM(cfg); lbase.load_state_dict(base_state)
    lcfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=TARGETS, bias="none")
    lora = get_peft_model(lbase, lcfg)
    train(lora, [p for p in lora.parameters() if p.requires_grad], task_a_batch, 300, 4e-3, 2, "lora")
    clean(os.path.join(DEMO, "lora-a"))
    lora.save_pretrained(os.path.join(DEMO, "lora-a"))
    readme = os.path.join(DEMO, "lora-a", "README.md")
    if os.path.exists(readme):
        os.remove(readme)

    fresh = LlamaForCausalLM(cfg); fresh.load_state_dict(base_state)
    losses = {"base": {"task_a": eval_loss(fresh, task_a_batch), "pretrain": eval_loss(fresh, pretrain_batch)},
              "full-a": {"task_a": eval_loss(full, task_a_batch), "pretrain": eval_loss(full, pretrain_batch)},
              "lora-a": {"task_a": eval_loss(lora, task_a_batch), "pretrain": eval_loss(lora, pretrain_batch)}}
    with open(os.path.join(DEMO, "losses.json"), "w") as f:
        json.dump(losses, f, indent=1, sort_keys=True)
    print(json.dumps(losses))

    make_variants(base_state, cfg)


def make_variants(base_state, cfg):
    """Adapters with unusual configs + PEFT's own merged weights, for scaling/orientation tests."""
    clean(VARIANTS)
    torch.manual_seed(7)
    specs = {
        # rsLoRA with per-module rank and alpha overrides.
        "rslora-patterns": dict(r=8, lora_alpha=16, use_rslora=True, target_modules=["q_proj", "v_proj", "down_proj"],
                                rank_pattern={"v_proj": 4}, alpha_pattern={"down_proj": 40}),
        # Plain alpha/r with layer-specific rank pattern (regex key as PEFT allows).
        "plain-pattern": dict(r=6, lora_alpha=12, use_rslora=False, target_modules=["o_proj", "up_proj"],
                              rank_pattern={"model.layers.1.mlp.up_proj": 2}),
    }
    expected = {}
    for name, kw in specs.items():
        m = LlamaForCausalLM(cfg); m.load_state_dict(base_state)
        p = get_peft_model(m, LoraConfig(lora_dropout=0.0, init_lora_weights=False, **kw))
        out = os.path.join(VARIANTS, name)
        p.save_pretrained(out)
        if os.path.exists(os.path.join(out, "README.md")):
            os.remove(os.path.join(out, "README.md"))
        merged = p.merge_and_unload().state_dict()
        tensors = {}
        for k, v in merged.items():
            if any(t in k for t in kw["target_modules"]) and k.endswith(".weight") and "layers.1" in k:
                tensors["merged." + k] = (v - base_state[k]).contiguous()   # the update PEFT applied
        save_file(tensors, os.path.join(out, "peft_merged_delta.safetensors"))
        expected[name] = sorted(tensors)
    # fan_in_fan_out: PEFT only allows it for Conv1D (GPT-2); write one by hand with PEFT's key
    # layout: base weight stored [in, out], lora_A [r, in], lora_B [out, r], update = (B A)^T.
    g = torch.Generator().manual_seed(3)
    out = os.path.join(VARIANTS, "fan-in-fan-out")
    os.makedirs(out)
    w = torch.randn(12, 10, generator=g)              # Conv1D weight [in=12, out=10]
    A = torch.randn(3, 12, generator=g); B = torch.randn(10, 3, generator=g)
    save_file({"h.0.attn.c_attn.weight": w}, os.path.join(out, "base.safetensors"))
    save_file({"base_model.model.h.0.attn.c_attn.lora_A.weight": A,
               "base_model.model.h.0.attn.c_attn.lora_B.weight": B}, os.path.join(out, "adapter_model.safetensors"))
    json.dump({"peft_type": "LORA", "r": 3, "lora_alpha": 6, "fan_in_fan_out": True, "target_modules": ["c_attn"],
               "use_rslora": False, "bias": "none", "task_type": "CAUSAL_LM"},
              open(os.path.join(out, "adapter_config.json"), "w"), indent=2)
    save_file({"merged.h.0.attn.c_attn.weight": (2.0 * (B @ A).T).contiguous()},
              os.path.join(out, "peft_merged_delta.safetensors"))
    print("variants:", json.dumps(expected))


if __name__ == "__main__":
    sys.exit(main())
