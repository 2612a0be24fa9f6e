#!/usr/bin/env python3
"""Tiny random models of each supported family with reference logits from PyTorch `transformers`
(eager attention, Float32), for Tests/TransformerTests/Fixtures/models/. Deterministic. Run from
the repository root:

    python3 scripts/make_transformer_fixtures.py

For each model NAME: NAME/config.json + NAME/model.safetensors (save_pretrained), and
NAME/expected.safetensors with `input_ids` (B, T) stored as F32 and `logits` (B, T, V).
llama_gguf.gguf is the `llama` model written as an F32 GGUF with llama.cpp's names and Q/K row
permutation (its logits are llama/expected.safetensors).
"""
import os, shutil, json
import numpy as np
import torch
from safetensors.torch import save_file
import transformers as tf

OUT = "Tests/TransformerTests/Fixtures/models"
torch.manual_seed(0)

COMMON = dict(vocab_size=64, hidden_size=24, intermediate_size=32, num_hidden_layers=2,
              num_attention_heads=4, max_position_embeddings=64, rms_norm_eps=1e-5)

MODELS = {
    "llama": lambda: tf.LlamaConfig(**COMMON, num_key_value_heads=2, tie_word_embeddings=False,
                                    rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
    "llama3": lambda: tf.LlamaConfig(**COMMON, num_key_value_heads=2, tie_word_embeddings=True,
                                     attention_bias=True, mlp_bias=True,
                                     rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                                      "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                      "original_max_position_embeddings": 16}),
    "mistral": lambda: tf.MistralConfig(**COMMON, num_key_value_heads=1, sliding_window=None, tie_word_embeddings=False,
                                        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
    "qwen2": lambda: tf.Qwen2Config(**COMMON, num_key_value_heads=2, tie_word_embeddings=True,
                                    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
    "gpt2": lambda: tf.GPT2Config(vocab_size=64, n_embd=24, bos_token_id=0, eos_token_id=0, n_layer=2, n_head=4, n_positions=64,
                                  activation_function="gelu_new", layer_norm_epsilon=1e-5),
    # Families added with the block descriptions (Sources/Transformer/Families); windows of 4
    # so that the 11-token inputs cross them, soft-caps small enough to bend the scores.
    "mistral_window": lambda: tf.MistralConfig(**COMMON, num_key_value_heads=1, sliding_window=4, tie_word_embeddings=False,
                                               rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
    "qwen3": lambda: tf.Qwen3Config(**COMMON, num_key_value_heads=2, head_dim=8, tie_word_embeddings=True,
                                    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
    "gemma2": lambda: tf.Gemma2Config(**COMMON, num_key_value_heads=2, head_dim=8, query_pre_attn_scalar=12,
                                      sliding_window=4, attn_logit_softcapping=3.0, final_logit_softcapping=5.0,
                                      hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True),
    "gemma3": lambda: tf.Gemma3TextConfig(**COMMON, num_key_value_heads=2, head_dim=8, query_pre_attn_scalar=8,
                                          sliding_window=4, layer_types=["sliding_attention", "full_attention"],
                                          hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True),
    # Gemma 3 4B-27B: linear rope scaling (factor 8) on the global layers only.
    "gemma3_linear": lambda: tf.Gemma3TextConfig(**COMMON, num_key_value_heads=2, head_dim=8, query_pre_attn_scalar=8,
                                                 sliding_window=4, layer_types=["sliding_attention", "full_attention"],
                                                 hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
                                                 rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                                                                  "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}),
    "phi3": lambda: tf.Phi3Config(**COMMON, num_key_value_heads=2, sliding_window=5, tie_word_embeddings=False,
                                  pad_token_id=0, bos_token_id=1, eos_token_id=2),
}


def build(name):
    cfg = MODELS[name]()
    cfg._attn_implementation = "eager"
    model = tf.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float().eval()
    with torch.no_grad():
        # Default init leaves biases and norm weights at 0/1; randomise every tensor so each
        # parameter matters to the logits.
        for n, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.2) + (1.0 if "norm" in n or "ln_" in n else 0.0))
    return model


# The families added later are written by `make_transformer_fixtures.py NAME...`, each with its
# own seed, so that the earlier fixtures stay as they were written (transformers 4.x).
LATER = ["mistral_window", "qwen3", "gemma2", "gemma3", "phi3", "gemma3_linear"]


def main(only=None):
    if only:
        names = only
    else:
        names = [n for n in MODELS if n not in LATER]
        shutil.rmtree(OUT, ignore_errors=True)
        os.makedirs(OUT)
    g = torch.Generator().manual_seed(1)
    for name in names:
        if only:
            torch.manual_seed(100 + list(MODELS).index(name))
            g = torch.Generator().manual_seed(200 + list(MODELS).index(name))
        model = build(name)
        d = f"{OUT}/{name}"
        model.save_pretrained(d, safe_serialization=True)
        for extra in ("generation_config.json",):
            if os.path.exists(f"{d}/{extra}"):
                os.remove(f"{d}/{extra}")
        ids = torch.randint(0, model.config.vocab_size, (2, 11), generator=g)
        with torch.no_grad():
            logits = model(ids).logits.float()
        # Mean NLL of tokens 4.. given the first 4 (the evaluation test's prompt/completion split).
        nll = torch.nn.functional.cross_entropy(logits[:, 3:-1].double().transpose(1, 2), ids[:, 4:], reduction="none").mean(dim=1)
        save_file({"input_ids": ids.float().contiguous(), "logits": logits.contiguous(), "completion_nll": nll.float()},
                  f"{d}/expected.safetensors")
        if name == "llama":
            write_gguf(model, f"{OUT}/llama_gguf.gguf")
        print(name, sum(p.numel() for p in model.parameters()), "parameters")


def permute(w, n_head):
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(model, path):
    import gguf
    c = model.config
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_freq_base(c.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_vocab_size(c.vocab_size)
    # A toy byte-level vocabulary (printable ASCII + one merge) so that the converter can rebuild a tokenizer.json.
    tokens = [chr(33 + i) for i in range(c.vocab_size - 1)] + ['!"']
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types([3] + [1] * (len(tokens) - 1))
    w.add_token_merges(['! "'])
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
           "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
           "self_attn.o_proj.weight": "attn_output.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
           "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
           "mlp.down_proj.weight": "ffn_down.weight"}
    for n, t in model.state_dict().items():
        a = t.float().numpy()
        if n in names:
            g = names[n]
        else:
            parts = n.split(".")
            g = f"blk.{parts[2]}." + per[".".join(parts[3:])]
        if g.endswith("attn_q.weight"):
            a = permute(a, c.num_attention_heads)
        if g.endswith("attn_k.weight"):
            a = permute(a, c.num_key_value_heads)
        # One tensor stored as F16 to exercise a second type; its expected logits tolerance covers it.
        w.add_tensor(g, np.ascontiguousarray(a))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    import sys
    main(sys.argv[1:] or None)
