#!/usr/bin/env python3
"""Loads a GGUF file with transformers (which dequantises it itself) and the Hugging Face folder
weightsmith converted from it, and compares their tokenizers and logits on a few prompts.

    python3 scripts/check_converted_gguf.py MODEL.gguf CONVERTED_DIR
"""
import os, sys, warnings
os.environ["TQDM_DISABLE"] = "1"
warnings.filterwarnings("ignore")
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging
logging.set_verbosity_error()
logging.disable_progress_bar()

torch.set_num_threads(int(os.environ.get("OPENBLAS_NUM_THREADS", "1")))
gguf, folder = sys.argv[1], sys.argv[2]
d, f = os.path.dirname(os.path.abspath(gguf)), os.path.basename(gguf)
ref = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
ref_tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
conv = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
conv_tok = AutoTokenizer.from_pretrained(folder)
worst = 0.0
for p in ["The capital of France is", "def add(a, b):\n    return", "Ünïcödé 12345 😀"]:
    a, b = ref_tok(p).input_ids, conv_tok(p).input_ids
    with torch.no_grad():
        d = (ref(torch.tensor([a])).logits - conv(torch.tensor([a])).logits).abs().max().item()
    worst = max(worst, d)
    print(f"{p!r}: {len(a)} tokens, same ids: {a == b}, max |logits difference| = {d:.3g}")
ids = conv_tok("The capital of France is", return_tensors="pt").input_ids
out = conv.generate(ids, max_new_tokens=4, do_sample=False)
print("transformers greedy on the converted folder:", repr(conv_tok.decode(out[0][ids.shape[1]:])))
