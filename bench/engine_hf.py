"""Peer for benches/engine.rs: Hugging Face BertForQuestionAnswering forward passes (torch,
fp32 and bf16 autocast) at batch 1/8/32 x sequence 128/256/384 on the same weights and inputs.

Usage: python bench/engine_hf.py CHECKPOINT_DIR   (prints "hf-NAME b=B L=L: X windows/s")
"""
import sys
import time

import torch
from transformers import BertForQuestionAnswering


def main():
    model = BertForQuestionAnswering.from_pretrained(sys.argv[1]).eval()
    for name, dtype in (("hf-torch-fp32", None), ("hf-torch-bf16", torch.bfloat16)):
        for size in (1, 8, 32):
            for length in (128, 256, 384):
                ids = torch.tensor([[2000 + ((b * length + i) * 7919) % 20000 for i in range(length)] for b in range(size)])
                inputs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids))
                with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                    model(**inputs)
                    runs, start = 0, time.perf_counter()
                    while runs < 3 or time.perf_counter() - start < 2.0:
                        model(**inputs)
                        runs += 1
                    rate = runs * size / (time.perf_counter() - start)
                print("%s b=%d L=%d: %.1f windows/s" % (name, size, length, rate), flush=True)


if __name__ == "__main__":
    main()
