"""Reference logits of Hugging Face `BertForQuestionAnswering` for `tests/forward_parity.rs`.

Loads the pretrained encoder (e.g. all-MiniLM-L6-v2), gives it a QA head drawn with
torch.manual_seed(0) (std 0.2), runs real SQuAD dev windows (one padded batch, fp32, eval mode) and
writes two small fixtures: the QA head (tests/fixtures/qa-head.safetensors) and the inputs with
their start/end logits (tests/fixtures/forward-parity.safetensors).

Usage: python scripts/reference/forward_logits.py MODEL_DIR DEV.json.gz FIXTURE_DIR
(needs torch, transformers==4.57.6, safetensors)
"""
import gzip
import json
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, BertForQuestionAnswering


def main():
    model_dir, dev_path, out_dir = sys.argv[1:4]
    torch.manual_seed(0)
    model = BertForQuestionAnswering.from_pretrained(model_dir).eval()
    # A head drawn wider than HF's default (std 0.02) so logits span several units and the
    # 1e-4 tolerance of the test is strict.
    with torch.no_grad():
        torch.nn.init.normal_(model.qa_outputs.weight, std=0.2)
        torch.nn.init.normal_(model.qa_outputs.bias, std=0.1)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with gzip.open(dev_path, "rt", encoding="utf-8") as f:
        data = json.load(f)["data"]
    pairs, multi = [], None
    for article in data:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                pair = (qa["question"].lstrip(), p["context"])
                if len(pairs) < 3:
                    pairs.append(pair)
                n = len(tokenizer(*pair, truncation="only_second", max_length=384, stride=128,
                                  return_overflowing_tokens=True)["input_ids"])
                if multi is None and n > 1:
                    multi = pair
    pairs.append(multi)
    enc = tokenizer([q for q, _ in pairs], [c for _, c in pairs], truncation="only_second",
                    max_length=384, stride=128, return_overflowing_tokens=True, padding="longest",
                    return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"],
                    attention_mask=enc["attention_mask"])
    save_file({"qa_outputs.weight": model.qa_outputs.weight.detach().contiguous(),
               "qa_outputs.bias": model.qa_outputs.bias.detach().contiguous()},
              out_dir + "/qa-head.safetensors")
    save_file({"input_ids": enc["input_ids"].contiguous(),
               "token_type_ids": enc["token_type_ids"].contiguous(),
               "attention_mask": enc["attention_mask"].contiguous(),
               "start_logits": out.start_logits.contiguous(),
               "end_logits": out.end_logits.contiguous()},
              out_dir + "/forward-parity.safetensors")
    print("windows", tuple(enc["input_ids"].shape), "lengths", enc["attention_mask"].sum(1).tolist())


if __name__ == "__main__":
    main()
