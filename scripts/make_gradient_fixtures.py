#!/usr/bin/env python3
"""Reference loss and parameter gradients from PyTorch autograd (Float64) for the tiny fixture
models of scripts/make_transformer_fixtures.py, for Tests/TransformerTests/Fixtures/gradients/.
Deterministic. Run from the repository root:

    python3 scripts/make_gradient_fixtures.py

For each model NAME: gradients/NAME.safetensors with `input_ids` (B, T) and `targets` (B, T)
stored as F32 (-1 = not scored), `loss` (1) = mean cross-entropy of the scored positions, and
`grad.<parameter>` for every parameter (tied weights once, under the embedding's name).
"""
import os
import torch
import transformers as tf
from safetensors.torch import save_file

MODELS = "Tests/TransformerTests/Fixtures/models"
OUT = "Tests/TransformerTests/Fixtures/gradients"


def main(only=None):
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(2)
    # The families added later (make_transformer_fixtures.py LATER) are written one by one with
    # their own seeds: `make_gradient_fixtures.py NAME...`.
    for name in only or ["llama", "llama3", "mistral", "qwen2", "gpt2"]:
        if only:
            g = torch.Generator().manual_seed(300 + len(name))
        model = tf.AutoModelForCausalLM.from_pretrained(os.path.abspath(f"{MODELS}/{name}"), attn_implementation="eager").double()
        model.train()  # no dropout in these configs' defaults? force it off below
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        B, T, V = 3, 12, model.config.vocab_size
        ids = torch.randint(0, V, (B, T), generator=g)
        targets = torch.full((B, T), -1, dtype=torch.long)
        # Sequence 0: every next token; 1: completion after a 4-token prompt; 2: prompt 3, 3 padding positions.
        targets[0, :-1] = ids[0, 1:]
        targets[1, 3:-1] = ids[1, 4:]
        targets[2, 2:T - 4] = ids[2, 3:T - 3]
        logits = model(ids).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-1)
        loss.backward()
        out = {"input_ids": ids.float(), "targets": targets.float(), "loss": loss.detach().float().reshape(1)}
        for n, p in model.named_parameters():
            out["grad." + n] = p.grad.float().contiguous()
        save_file(out, f"{OUT}/{name}.safetensors")
        print(name, f"loss {loss.item():.6f}", len(out) - 3, "gradients")


if __name__ == "__main__":
    import sys
    main(sys.argv[1:] or None)
