"""Peer for `cargo bench --bench features`: Hugging Face run_qa.py's prepare_validation_features
over all of SQuAD v1.1 dev, batched by 1,000 questions as `datasets.map(batched=True)` does.

Usage: python bench/features_hf.py MODEL_DIR DEV.json.gz   (transformers + tokenizers, no torch)
"""
import gzip
import json
import sys
import time

from transformers import AutoTokenizer


def main():
    model_dir, dev_path = sys.argv[1:3]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with gzip.open(dev_path, "rt", encoding="utf-8") as f:
        data = json.load(f)["data"]
    questions, contexts = [], []
    for article in data:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                questions.append(qa["question"].lstrip())
                contexts.append(p["context"])
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        windows = 0
        for i in range(0, len(questions), 1000):
            enc = tokenizer(questions[i:i + 1000], contexts[i:i + 1000], truncation="only_second",
                            max_length=384, stride=128, return_overflowing_tokens=True,
                            return_offsets_mapping=True, padding="max_length")
            for j in range(len(enc["input_ids"])):
                seq = enc.sequence_ids(j)
                enc["offset_mapping"][j] = [o if seq[k] == 1 else None for k, o in enumerate(enc["offset_mapping"][j])]
            windows += len(enc["input_ids"])
        best = min(best, time.perf_counter() - start)
    print("hf-features: %d questions, %d windows; best of 3: %.2f s = %.0f questions/s, %.0f windows/s"
          % (len(questions), windows, best, len(questions) / best, windows / best))


if __name__ == "__main__":
    main()
