#!/usr/bin/env python3
"""GGUF files of tiny random models of the families llama.cpp names differently from Hugging
Face, for Tests/TransformerTests/Fixtures/models/gguf/. Deterministic. Run from the repository
root:

    python3 scripts/make_family_gguf_fixtures.py [NAME...]

For each NAME (qwen3, gemma2, gemma3, gemma3_linear, phi3, gpt2):
  NAME/            the Hugging Face model (config.json + model.safetensors, save_pretrained)
  NAME.gguf        the same model as an F32 GGUF written the way llama.cpp's convert_hf_to_gguf.py
                   writes it: tensor names from the `gguf` package's TensorNameMap, the converter's
                   tensor changes (Gemma norms stored as 1 + w, GPT-2's Conv1D weights transposed
                   and the tied output matrix written out), and its metadata keys
  NAME.expected.safetensors  `input_ids` (as F32) and `logits` from transformers on NAME/

Each GGUF is checked before it is kept: transformers' own GGUF loader
(`from_pretrained(gguf_file=...)`, which undoes the converter's changes) must give the same logits
as the Hugging Face model, so the files are GGUFs that the Python ecosystem reads as this model.
The configurations follow what a GGUF can carry: Gemma 2's query_pre_attn_scalar equals head_dim
(llama.cpp scales by head_dim below 27B), Gemma 3 has six layers so that its 5-local-1-global
pattern (the one llama.cpp assumes) is complete.
"""
import json, os, shutil, sys
import numpy as np
import torch
from safetensors.torch import save_file, load_file
import transformers as tf
import gguf

OUT = "Tests/TransformerTests/Fixtures/models/gguf"
COMMON = dict(vocab_size=64, hidden_size=24, intermediate_size=32, num_hidden_layers=2,
              num_attention_heads=4, max_position_embeddings=64, rms_norm_eps=1e-5)

MODELS = {
    "qwen3": (gguf.MODEL_ARCH.QWEN3, lambda: tf.Qwen3Config(
        **COMMON, num_key_value_heads=2, head_dim=8, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})),
    "gemma2": (gguf.MODEL_ARCH.GEMMA2, lambda: tf.Gemma2Config(
        **COMMON, num_key_value_heads=2, head_dim=8, query_pre_attn_scalar=8, sliding_window=4,
        attn_logit_softcapping=3.0, final_logit_softcapping=5.0, hidden_activation="gelu_pytorch_tanh",
        tie_word_embeddings=True)),
    "gemma3": (gguf.MODEL_ARCH.GEMMA3, lambda: tf.Gemma3TextConfig(
        **{**COMMON, "num_hidden_layers": 6}, num_key_value_heads=2, head_dim=8, query_pre_attn_scalar=8,
        sliding_window=4, hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
        rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})),
    "phi3": (gguf.MODEL_ARCH.PHI3, lambda: tf.Phi3Config(
        **COMMON, num_key_value_heads=2, sliding_window=5, tie_word_embeddings=False,
        pad_token_id=0, bos_token_id=1, eos_token_id=2)),
    "gpt2": (gguf.MODEL_ARCH.GPT2, lambda: tf.GPT2Config(
        vocab_size=64, n_embd=24, bos_token_id=0, eos_token_id=0, n_layer=2, n_head=4, n_positions=64,
        activation_function="gelu_new", layer_norm_epsilon=1e-5)),
    # Gemma 3 4B-27B scale the global layers' rope linearly (factor 8): rope.scaling.type/factor.
    "gemma3_linear": (gguf.MODEL_ARCH.GEMMA3, lambda: tf.Gemma3TextConfig(
        **{**COMMON, "num_hidden_layers": 6}, num_key_value_heads=2, head_dim=8, query_pre_attn_scalar=8,
        sliding_window=4, hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
        rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})),
}


def build(name, seed):
    torch.manual_seed(seed)
    cfg = MODELS[name][1]()
    model = tf.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32).eval()
    with torch.no_grad():
        # Every tensor random (norm weights around 1), so that each parameter matters.
        for n, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.2) + (1.0 if "norm" in n or "ln_" in n else 0.0))
        if name.startswith("gemma"):
            # Gemma stores w of (1 + w): centre it on 0.
            for n, p in model.named_parameters():
                if "norm" in n:
                    p.sub_(1.0)
    return model


def add_vocab(w, name, vocab):
    if name in ("qwen3", "gpt2"):
        # Byte-level BPE, as convert_hf_to_gguf's _set_vocab_gpt2 writes it.
        tokens = [chr(33 + i) for i in range(vocab - 1)] + ['!"']
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("qwen2" if name == "qwen3" else "gpt-2")
        w.add_token_list(tokens)
        w.add_token_types([3] + [1] * (vocab - 1))
        w.add_token_merges(['! "'])
    else:
        # SentencePiece (Gemma, Phi-3: _set_vocab_sentencepiece): pieces, scores and types.
        tokens = ["<pad>", "<s>", "</s>"] + [f"\u2581t{i}" for i in range(vocab - 3)]
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_scores([0.0, 0.0, 0.0] + [-float(i) for i in range(vocab - 3)])
        w.add_token_types([3, 3, 3] + [1] * (vocab - 3))
    w.add_bos_token_id(1 if name != "gpt2" else 0)
    w.add_eos_token_id(2 if name != "gpt2" else 0)


def write_gguf(name, folder, path):
    arch, _ = MODELS[name]
    c = json.load(open(f"{folder}/config.json"))
    tensors = load_file(f"{folder}/model.safetensors")
    layers = c.get("num_hidden_layers", c.get("n_layer"))
    tmap = gguf.get_tensor_name_map(arch, layers)
    w = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[arch])
    w.add_block_count(layers)
    if name == "gpt2":
        w.add_context_length(c["n_positions"])
        w.add_embedding_length(c["n_embd"])
        w.add_feed_forward_length(4 * c["n_embd"])
        w.add_head_count(c["n_head"])
        w.add_layer_norm_eps(c["layer_norm_epsilon"])
    else:
        w.add_context_length(c["max_position_embeddings"])
        w.add_embedding_length(c["hidden_size"])
        w.add_feed_forward_length(c["intermediate_size"])
        w.add_head_count(c["num_attention_heads"])
        w.add_head_count_kv(c["num_key_value_heads"])
        w.add_layer_norm_rms_eps(c["rms_norm_eps"])
        rope = c.get("rope_parameters") or {}
        theta = rope.get("full_attention", rope).get("rope_theta", c.get("rope_theta", 10000.0))
        w.add_rope_freq_base(theta)
        if "head_dim" in c:
            w.add_key_length(c["head_dim"])
            w.add_value_length(c["head_dim"])
    if name == "gemma2":
        w.add_attn_logit_softcapping(c["attn_logit_softcapping"])
        w.add_final_logit_softcapping(c["final_logit_softcapping"])
        w.add_sliding_window(c["sliding_window"])
    if name.startswith("gemma3"):
        full = (c.get("rope_parameters") or {}).get("full_attention", {})
        if full.get("rope_type") == "linear":
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(full["factor"])
        if c.get("final_logit_softcapping"):
            w.add_final_logit_softcapping(c["final_logit_softcapping"])
        w.add_sliding_window(c["sliding_window"])
    if name == "phi3":
        w.add_rope_dimension_count(c["hidden_size"] // c["num_attention_heads"])
        w.add_rope_scaling_orig_ctx_len(c.get("original_max_position_embeddings") or c["max_position_embeddings"])
        w.add_sliding_window(c.get("sliding_window") or 0)
    add_vocab(w, name, c["vocab_size"])
    for n, t in tensors.items():
        if n.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        if name.startswith("gemma") and n == "lm_head.weight":
            continue
        a = t.float()
        if name.startswith("gemma") and n.endswith("norm.weight"):
            a = a + 1  # Gemma's (1 + w), stored as a plain RMSNorm weight
        if name == "gpt2" and n.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
            a = a.transpose(1, 0)
        g = tmap.get_name(n, try_suffixes=(".weight", ".bias"))
        assert g is not None, n
        w.add_tensor(g, np.ascontiguousarray(a.numpy()))
        if name == "gpt2" and g == "token_embd.weight":
            w.add_tensor("output.weight", np.ascontiguousarray(a.numpy()))  # GPT-2's tied output, written out
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main(names):
    os.makedirs(OUT, exist_ok=True)
    for i, name in enumerate(MODELS):
        if names and name not in names:
            continue
        model = build(name, 300 + i)
        folder = f"{OUT}/{name}"
        shutil.rmtree(folder, ignore_errors=True)
        model.save_pretrained(folder, safe_serialization=True)
        if os.path.exists(f"{folder}/generation_config.json"):
            os.remove(f"{folder}/generation_config.json")
        g = torch.Generator().manual_seed(400 + i)
        ids = torch.randint(0, model.config.vocab_size, (2, 11), generator=g)
        with torch.no_grad():
            logits = model(ids).logits.float()
        save_file({"input_ids": ids.float().contiguous(), "logits": logits.contiguous()}, f"{OUT}/{name}.expected.safetensors")
        path = f"{OUT}/{name}.gguf"
        write_gguf(name, folder, path)
        # transformers reads the GGUF back (its tensor processors undo the converter's changes);
        # with the original configuration it must reproduce the logits.
        back = tf.AutoModelForCausalLM.from_pretrained(OUT, gguf_file=f"{name}.gguf", config=model.config,
                                                       attn_implementation="eager", dtype=torch.float32).eval()
        with torch.no_grad():
            diff = (back(ids).logits.float() - logits).abs().max().item()
        assert diff < 1e-4, (name, diff)
        print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, transformers' GGUF loader max |logit diff| {diff:.2e}")


if __name__ == "__main__":
    main(sys.argv[1:])
