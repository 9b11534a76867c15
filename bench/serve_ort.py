"""The strongest Python peer: ONNX Runtime with stock dynamic int8 quantization, the Optimum
recipe done by hand (torch.onnx.export of BertForQuestionAnswering, then
onnxruntime.quantization.quantize_dynamic, per-channel QInt8 weights), with run_qa's windows
(stride 128, 384 tokens) and its n-best search (20 starts x 20 ends, answers <= 30 tokens).
Same JSON as bertqa's /answer, so benches/load.rs measures both in one run.

Usage:
  python bench/serve_ort.py CHECKPOINT build OUT_DIR              (writes model.onnx, model-int8.onnx)
  python bench/serve_ort.py CHECKPOINT serve OUT_DIR PORT fp32|int8
  python bench/serve_ort.py CHECKPOINT inprocess OUT_DIR SQUAD_FILE QUESTIONS
      (one question per call, as a Python service runs it: prints q/s of fp32 and int8)
  python bench/serve_ort.py CHECKPOINT accuracy OUT_DIR SQUAD_FILE QUESTIONS
      (EM/F1 of fp32 and int8 on the first QUESTIONS, and how often int8 agrees with fp32)
"""
import collections
import gzip
import json
import os
import re
import string
import sys
import time

import numpy as np
import onnxruntime as ort
from transformers import AutoTokenizer

from http_peer import serve_answers

MAX_LEN, STRIDE, N_BEST, MAX_ANSWER = 384, 128, 20, 30


def build(checkpoint, out):
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import BertForQuestionAnswering

    os.makedirs(out, exist_ok=True)
    model = BertForQuestionAnswering.from_pretrained(checkpoint).eval()
    ids = torch.ones(1, 16, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "seq"} for n in names + ["start_logits", "end_logits"]}
    torch.onnx.export(model, (ids, torch.ones_like(ids), torch.zeros_like(ids)),
                      f"{out}/model.onnx", input_names=names,
                      output_names=["start_logits", "end_logits"], dynamic_axes=axes,
                      opset_version=17, dynamo=False)
    quantize_dynamic(f"{out}/model.onnx", f"{out}/model-int8.onnx", per_channel=True,
                     weight_type=QuantType.QInt8)


class Reader:
    """One ONNX Runtime session and the tokenizer: question + context -> best span."""

    def __init__(self, checkpoint, graph, threads=None):
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        self.inputs = {i.name for i in self.session.get_inputs()}

    def answer(self, question, context):
        enc = self.tokenizer(question, context, truncation="only_second", max_length=MAX_LEN,
                             stride=STRIDE, return_overflowing_tokens=True,
                             return_offsets_mapping=True, padding="longest", return_tensors="np")
        feed = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")
                if k in self.inputs}
        starts, ends = self.session.run(["start_logits", "end_logits"], feed)
        best = (-np.inf, 0, 0)
        for w in range(starts.shape[0]):
            seq = enc.sequence_ids(w)
            offsets = enc["offset_mapping"][w]
            s_top = np.argsort(starts[w])[::-1][:N_BEST]
            e_top = np.argsort(ends[w])[::-1][:N_BEST]
            for s in s_top:
                for e in e_top:
                    if seq[s] != 1 or seq[e] != 1 or e < s or e - s + 1 > MAX_ANSWER:
                        continue
                    score = starts[w][s] + ends[w][e]
                    if score > best[0]:
                        best = (score, int(offsets[s][0]), int(offsets[e][1]))
        _, start, end = best
        return {"answer": context[start:end], "score": float(best[0]), "start": start, "end": end}


def examples(path, limit):
    data = json.load(gzip.open(path) if path.endswith(".gz") else open(path))["data"]
    out = []
    for article in data:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                out.append((qa["question"], paragraph["context"], [a["text"] for a in qa["answers"]]))
    return out[:limit]


def normalize(s):
    s = "".join(c for c in s.lower() if c not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", s).split())


def f1(prediction, gold):
    p, g = normalize(prediction).split(), normalize(gold).split()
    same = sum((collections.Counter(p) & collections.Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def serve(checkpoint, out, port, form):
    reader = Reader(checkpoint, f"{out}/{'model-int8' if form == 'int8' else 'model'}.onnx")
    serve_answers(reader.answer, port)


def main():
    checkpoint, mode, out = sys.argv[1:4]
    if mode == "build":
        build(checkpoint, out)
    elif mode == "serve":
        serve(checkpoint, out, int(sys.argv[4]), sys.argv[5])
    elif mode in ("inprocess", "accuracy"):
        questions = examples(sys.argv[4], int(sys.argv[5]))
        answers = {}
        for form, graph in (("fp32", "model.onnx"), ("int8", "model-int8.onnx")):
            reader = Reader(checkpoint, f"{out}/{graph}")
            for q, c, _ in questions[:16]:
                reader.answer(q, c)
            started = time.perf_counter()
            answers[form] = [reader.answer(q, c)["answer"] for q, c, _ in questions]
            rate = len(questions) / (time.perf_counter() - started)
            if mode == "inprocess":
                print(f"ort-python-{form} in-process: {rate:.1f} q/s over {len(questions)} questions")
        if mode == "accuracy":
            for form in ("fp32", "int8"):
                em = np.mean([max(normalize(a) == normalize(g) for g in gold)
                              for a, (_, _, gold) in zip(answers[form], questions)]) * 100
                f = np.mean([max(f1(a, g) for g in gold) for a, (_, _, gold) in zip(answers[form], questions)]) * 100
                print(f"ort-python-{form} accuracy: EM {em:.2f} F1 {f:.2f} over {len(questions)} questions")
            same = np.mean([a == b for a, b in zip(answers["fp32"], answers["int8"])]) * 100
            print(f"ort-python-int8 agreement with fp32: {same:.1f}%")


if __name__ == "__main__":
    main()
