"""Peer for benches/engine.rs: Hugging Face BertForQuestionAnswering forward passes (torch,
fp32 and bf16 autocast; on a GPU also fp16) at batch 1/8/32 (GPU: also 128) x sequence
128/256/384 on the same weights and inputs.

Usage: python bench/engine_hf.py CHECKPOINT_DIR [cpu|cuda]   (prints "hf-NAME b=B L=L: X windows/s")
"""
import sys
import time

import torch
from transformers import BertForQuestionAnswering


def main():
    device = sys.argv[2] if len(sys.argv) > 2 else "cpu"
    model = BertForQuestionAnswering.from_pretrained(sys.argv[1]).eval().to(device)
    dtypes = [("fp32", None), ("bf16", torch.bfloat16)]
    sizes = (1, 8, 32)
    if device == "cuda":
        dtypes.append(("fp16", torch.float16))
        sizes += (128,)
    prefix = "hf-torch-cuda-" if device == "cuda" else "hf-torch-"
    budget = 1.0 if device == "cuda" else 2.0  # seconds per shape, as benches/engine.rs
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for name, dtype in dtypes:
        for size in sizes:
            for length in (128, 256, 384):
                ids = torch.tensor([[2000 + ((b * length + i) * 7919) % 20000 for i in range(length)] for b in range(size)])
                inputs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids))
                inputs = {k: v.to(device) for k, v in inputs.items()}
                with torch.inference_mode(), torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
                    model(**inputs)
                    sync()
                    runs, start = 0, time.perf_counter()
                    while runs < 3 or time.perf_counter() - start < budget:
                        # Logits back on the host, as a server needs them (ORT's run does the same).
                        out = model(**inputs)
                        out.start_logits.cpu(), out.end_logits.cpu()
                        runs += 1
                    sync()
                    rate = runs * size / (time.perf_counter() - start)
                print("%s%s b=%d L=%d: %.1f windows/s" % (prefix, name, size, length, rate), flush=True)


if __name__ == "__main__":
    main()
