"""Peer for the training benchmark: the Hugging Face Trainer fine-tuning the same model on the
same SQuAD windows (run_qa.py's prepare_train_features), batch 16, on CPU.

Usage: python bench/train_hf.py MODEL_DIR TRAIN.json.gz QUESTIONS PADDING [PRECISION]
  PADDING: "max_length" (run_qa.py's default, every window padded to 384) or "dynamic"
  (pad per batch + group_by_length, the fastest a Trainer user can configure).
  PRECISION: "bf16" (autocast, the default) or "fp32" (what a CPU without bf16 gets, to set
  beside `finetune --precision fp32`).
Prints one line: windows, seconds, windows/s.
"""
import gzip
import json
import sys
import tempfile
import time

import torch
from transformers import (AutoTokenizer, BertForQuestionAnswering, DataCollatorWithPadding,
                          Trainer, TrainingArguments, default_data_collator)


def features(tokenizer, path, limit, pad):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        data = json.load(f)["data"]
    qs, cs, answers = [], [], []
    for article in data:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                if len(qs) < limit:
                    qs.append(qa["question"].lstrip()); cs.append(p["context"]); answers.append(qa["answers"][0])
    enc = tokenizer(qs, cs, truncation="only_second", max_length=384, stride=128,
                    return_overflowing_tokens=True, return_offsets_mapping=True,
                    padding="max_length" if pad == "max_length" else False)
    rows = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        ids = enc["input_ids"][i]; seq = enc.sequence_ids(i); a = answers[enc["overflow_to_sample_mapping"][i]]
        s_char, e_char = a["answer_start"], a["answer_start"] + len(a["text"])
        ts = 0
        while seq[ts] != 1: ts += 1
        te = len(ids) - 1
        while seq[te] != 1: te -= 1
        if not (offsets[ts][0] <= s_char and offsets[te][1] >= e_char):
            sp = ep = 0
        else:
            while ts < len(offsets) and offsets[ts][0] <= s_char: ts += 1
            sp = ts - 1
            while offsets[te][1] >= e_char: te -= 1
            ep = te + 1
        rows.append({"input_ids": ids, "token_type_ids": enc["token_type_ids"][i],
                     "attention_mask": enc["attention_mask"][i], "start_positions": sp, "end_positions": ep})
    return rows


def main():
    model_dir, train_path, limit, pad = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    precision = sys.argv[5] if len(sys.argv) > 5 else "bf16"
    if precision not in ("bf16", "fp32"):
        sys.exit(f"PRECISION must be bf16 or fp32, not {precision!r}")
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = BertForQuestionAnswering.from_pretrained(model_dir)
    rows = features(tokenizer, train_path, limit, pad)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=16, num_train_epochs=1,
                                 learning_rate=3e-5, warmup_ratio=0.1, weight_decay=0.01,
                                 bf16=(precision == "bf16"),
                                 use_cpu=True, report_to=[], save_strategy="no", logging_steps=10_000,
                                 group_by_length=(pad == "dynamic"), dataloader_num_workers=0)
        collator = default_data_collator if pad == "max_length" else DataCollatorWithPadding(tokenizer)
        trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    print("hf-train %s %s: %d windows, %.1f s, %.2f windows/s (torch %s, %d threads)"
          % (pad, precision, len(rows), seconds, len(rows) / seconds, torch.__version__,
             torch.get_num_threads()))


if __name__ == "__main__":
    main()
