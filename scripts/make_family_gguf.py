#!/usr/bin/env python3
"""Writes fixtures/family/profession.gguf: the `profession-full` fine-tune of the fixture family
as a llama.cpp GGUF, with the PyPI `gguf` package (GGUFWriter, gguf.quants), so that a walkthrough
can merge a GGUF with folders and a LoRA adapter in one recipe.

Layout as llama.cpp's convert_hf_to_gguf.py writes a Llama: llama.cpp tensor names, Q and K rows
permuted per head, the tied output matrix omitted, the byte-level BPE vocabulary of
tokenizer.json as tokenizer.ggml.{tokens,token_type,merges}. The 2-D weights are Q8_0 (what a
llama.cpp user typically downloads), norms F32. Deterministic. Run from the repository root:

    python3 -m venv /tmp/ggvenv && /tmp/ggvenv/bin/pip install gguf safetensors numpy
    /tmp/ggvenv/bin/python scripts/make_family_gguf.py
"""
import json
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf.quants import quantize
from safetensors.numpy import load_file

SRC = "fixtures/family/profession-full"
OUT = "fixtures/family/profession.gguf"


def permute(w, n_head):
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main():
    c = json.load(open(f"{SRC}/config.json"))
    tok = json.load(open(f"{SRC}/tokenizer.json"))
    tensors = load_file(f"{SRC}/model.safetensors")
    if os.path.exists(OUT):
        os.remove(OUT)
    w = gguf.GGUFWriter(OUT, "llama")
    w.add_name("fixture family profession-full")
    w.add_block_count(c["num_hidden_layers"])
    w.add_context_length(c["max_position_embeddings"])
    w.add_embedding_length(c["hidden_size"])
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_head_count(c["num_attention_heads"])
    w.add_head_count_kv(c["num_key_value_heads"])
    w.add_key_length(c["head_dim"])
    w.add_value_length(c["head_dim"])
    w.add_rope_freq_base(c["rope_parameters"]["rope_theta"])
    w.add_layer_norm_rms_eps(c["rms_norm_eps"])
    w.add_vocab_size(c["vocab_size"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)

    vocab = tok["model"]["vocab"]
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    special = {a["id"] for a in tok["added_tokens"] if a.get("special")}
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types([3 if i in special else 1 for i in range(len(tokens))])
    w.add_token_merges(merges)
    w.add_bos_token_id(c["bos_token_id"])
    w.add_eos_token_id(c["eos_token_id"])
    w.add_add_bos_token(False)

    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
    per = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
           "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
           "self_attn.o_proj.weight": "attn_output.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
           "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
           "mlp.down_proj.weight": "ffn_down.weight"}
    for n in sorted(tensors):
        if n == "lm_head.weight" and c.get("tie_word_embeddings"):
            continue
        a = tensors[n].astype(np.float32)
        if n in names:
            g = names[n]
        else:
            parts = n.split(".")
            g = f"blk.{parts[2]}." + per[".".join(parts[3:])]
        if g.endswith("attn_q.weight"):
            a = permute(a, c["num_attention_heads"])
        if g.endswith("attn_k.weight"):
            a = permute(a, c["num_key_value_heads"])
        a = np.ascontiguousarray(a)
        if a.ndim == 2:
            q = quantize(a, Q.Q8_0)
            w.add_tensor(g, q, raw_shape=q.shape, raw_dtype=Q.Q8_0)
        else:
            w.add_tensor(g, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
