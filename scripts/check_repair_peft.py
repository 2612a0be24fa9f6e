#!/usr/bin/env python3
"""PEFT loads the adapter `weightsmith repair --as-adapter` writes, and its merge matches ours.

Usage: python3 scripts/check_repair_peft.py BASE ADAPTER FULL [--exact]
  BASE     the base Hugging Face folder
  ADAPTER  the output of `weightsmith repair --base BASE --lora L ... --as-adapter -o ADAPTER`
  FULL     the output of the same command without --as-adapter (a full checkpoint)
Loads BASE with transformers, ADAPTER with peft.PeftModel.from_pretrained, merge_and_unload(),
and compares every weight with FULL. The difference is the rank-r truncation of the
refactorisation (Shuttleworth et al. 2024, §5; PEFT's reduce_intruder_dimension): it is printed
per matrix next to the truncation weightsmith reported in ADAPTER/repair_report.json, and must
match it (the relative Frobenius difference of ΔW equals the reported truncation). With --exact,
every matrix must also agree to 1e-5 relative. Also compares the logits of both models on one
prompt. Exit status 1 on any failure. Needs torch, transformers and peft (never a weightsmith
runtime dependency).
"""
import json
import os
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    base, adapter, full = sys.argv[1:4]
    exact = "--exact" in sys.argv
    report = json.load(open(os.path.join(adapter, "repair_report.json")))
    trunc = {c["name"]: c.get("adapter_truncation") for c in report["changes"]}
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    base_sd = {k: v.clone() for k, v in model.state_dict().items()}
    peft_model = PeftModel.from_pretrained(model, adapter)
    merged = peft_model.merge_and_unload().state_dict()
    ours = {}
    for f in sorted(os.listdir(full)):
        if f.endswith(".safetensors"):
            ours.update(load_file(os.path.join(full, f)))
    ok = True
    changed = 0
    worst_unchanged = 0.0
    for name, w in ours.items():
        if name not in merged:
            continue
        p = merged[name].float()
        d_ours = w.double() - base_sd[name].double()
        d_peft = p.double() - base_sd[name].double()
        denom = d_ours.norm().item()
        rel = (d_peft - d_ours).norm().item() / denom if denom > 0 else (d_peft - d_ours).norm().item()
        if name in trunc:
            changed += 1
            t = trunc[name] or 0.0
            good = abs(rel - t) <= 1e-4 + 1e-3 * t and (not exact or rel <= 1e-5)
            print(f"{name}: |ΔW_peft − ΔW_full| / |ΔW_full| = {rel:.3e}, reported truncation {t:.3e} {'ok' if good else 'MISMATCH'}")
            ok &= good
        else:
            worst_unchanged = max(worst_unchanged, rel)
    print(f"{changed} repaired matrices; unchanged matrices agree to {worst_unchanged:.2e} relative (in ΔW)")
    ok &= worst_unchanged <= 1e-5
    tok = AutoTokenizer.from_pretrained(base)
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    full_model = AutoModelForCausalLM.from_pretrained(full, dtype=torch.float32)
    with torch.no_grad():
        a = peft_model(ids).logits
        b = full_model(ids).logits
    diff = (a - b).abs().max().item()
    print(f"logits max |peft − full| = {diff:.3e}")
    if exact:
        ok &= diff <= 1e-4
    print("OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
