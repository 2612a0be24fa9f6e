#!/usr/bin/env python3
"""PyTorch CPU training-step throughput on SmolLM2-135M (the GGUF dequantised to Float32 by
transformers), matching TrainingBenchmarks.testTrainingThroughput: batch 4 x 64 random tokens,
AdamW lr 1e-4, clip 1.0; LoRA (PEFT, r 8, alpha 16, all linear layers) first with the peak RSS
after it, then full fine-tuning. Steps 2..n are timed. Threads: OPENBLAS_NUM_THREADS.

    OPENBLAS_NUM_THREADS=2 python3 scripts/bench_training_torch.py MODEL.gguf [STEPS]
"""
import os, resource, sys, time
import torch
from transformers import AutoModelForCausalLM

threads = int(os.environ.get("OPENBLAS_NUM_THREADS", "1"))
torch.set_num_threads(threads)
path = sys.argv[1]
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 4
g = torch.Generator().manual_seed(7)
ids = torch.randint(100, 40000, (4, 64), generator=g)


def load():
    return AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(path)), gguf_file=os.path.basename(path),
                                                torch_dtype=torch.float32)


def run(model):
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    times = []
    for _ in range(steps):
        t = time.time()
        loss = model(ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.time() - t)
    return (steps - 1) * 4 * 64 / sum(times[1:])


from peft import LoraConfig, get_peft_model
lora = get_peft_model(load(), LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                         target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
lora_tps = run(lora)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
del lora
full_tps = run(load())
print(f"torch {torch.__version__} training SmolLM2-135M 4x64 (threads={threads}): LoRA r8 all-linear {lora_tps:.1f} tok/s "
      f"(peak RSS {peak:.0f} MB), full {full_tps:.1f} tok/s")
