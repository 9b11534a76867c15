"""Peer for benches/load.rs: Hugging Face pipeline("question-answering") (transformers 4.57.x)
on the same checkpoint, in-process or behind a minimal FastAPI/uvicorn server with bertqa's
/answer JSON shape, for a like-for-like HTTP comparison.

Usage:
  python bench/serve_hf.py CHECKPOINT serve PORT [fp32|bf16]
  python bench/serve_hf.py CHECKPOINT inprocess SQUAD_FILE QUESTIONS   (prints q/s, fp32 and bf16)
"""
import gzip
import json
import sys
import time

import torch
from transformers import pipeline

from http_peer import serve_answers


def qa_pipeline(checkpoint, dtype):
    return pipeline("question-answering", model=checkpoint, tokenizer=checkpoint,
                    torch_dtype=torch.bfloat16 if dtype == "bf16" else torch.float32, device="cpu")


def serve(checkpoint, port, dtype):
    qa = qa_pipeline(checkpoint, dtype)

    def answer(question, context):
        out = qa(question=question, context=context)
        return {"answer": out["answer"], "score": float(out["score"]), "start": out["start"], "end": out["end"]}

    serve_answers(answer, port)


def in_process(checkpoint, data, questions):
    opener = gzip.open if data.endswith(".gz") else open
    with opener(data, "rt", encoding="utf-8") as f:
        squad = json.load(f)
    pairs = [(qa["question"], p["context"]) for a in squad["data"] for p in a["paragraphs"] for qa in p["qas"]][:questions]
    for dtype in ("fp32", "bf16"):
        qa = qa_pipeline(checkpoint, dtype)
        for q, c in pairs[:16]:
            qa(question=q, context=c)
        start = time.perf_counter()
        for q, c in pairs:
            qa(question=q, context=c)
        rate = len(pairs) / (time.perf_counter() - start)
        print("hf-pipeline-inprocess-%s: %.1f q/s" % (dtype, rate), flush=True)


if __name__ == "__main__":
    checkpoint, mode = sys.argv[1], sys.argv[2]
    if mode == "serve":
        serve(checkpoint, int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "fp32")
    else:
        in_process(checkpoint, sys.argv[3], int(sys.argv[4]))
