"""Reference window digests from Hugging Face's `run_qa.py` preprocessing.

Re-implements `prepare_train_features` and `prepare_validation_features` of
transformers/examples/pytorch/question-answering/run_qa.py (same tokenizer call, same
labelling loop, same offset masking) and writes one short sha256 digest per question, so the
Rust test can check our windows without a large fixture or Python at test time.

The digest text of one question is, for each window in order:
    ids=<input_ids>;tt=<token_type_ids>;off=<start:end or - per token>;lab=<start>,<end>\n
(comma-separated, unpadded). `off` holds the validation offset_mapping (None outside the
context), `lab` the training labels from the first answer (CLS index when none fits).

Usage (needs `pip install transformers==4.57.6 tokenizers==0.22.2`, no torch):
    python scripts/reference/feature_digests.py MODEL_DIR DEV.json.gz TRAIN.json.gz OUT.tsv.gz
"""
import gzip
import hashlib
import json
import sys

from transformers import AutoTokenizer

MAX_SEQ_LEN = 384
DOC_STRIDE = 128
MAX_QUERY_LEN = 64  # run_qa has no query limit: questions over it are marked and skipped
TRAIN_QUESTIONS = 5000


def load(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def examples(dataset, limit=None):
    n = 0
    for article in dataset["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                if limit is not None and n >= limit:
                    return
                n += 1
                yield qa["id"], qa["question"], paragraph["context"], qa["answers"]


def digest_question(tokenizer, question, context, answers):
    question = question.lstrip()
    enc = tokenizer(
        [question], [context], truncation="only_second", max_length=MAX_SEQ_LEN,
        stride=DOC_STRIDE, return_overflowing_tokens=True, return_offsets_mapping=True,
        padding=False,
    )
    lines = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        input_ids = enc["input_ids"][i]
        cls_index = input_ids.index(tokenizer.cls_token_id)
        sequence_ids = enc.sequence_ids(i)
        # prepare_train_features: labels
        if len(answers) == 0:
            start_pos = end_pos = cls_index
        else:
            start_char = answers[0]["answer_start"]
            end_char = start_char + len(answers[0]["text"])
            token_start_index = 0
            while sequence_ids[token_start_index] != 1:
                token_start_index += 1
            token_end_index = len(input_ids) - 1
            while sequence_ids[token_end_index] != 1:
                token_end_index -= 1
            if not (offsets[token_start_index][0] <= start_char and offsets[token_end_index][1] >= end_char):
                start_pos = end_pos = cls_index
            else:
                while token_start_index < len(offsets) and offsets[token_start_index][0] <= start_char:
                    token_start_index += 1
                start_pos = token_start_index - 1
                while offsets[token_end_index][1] >= end_char:
                    token_end_index -= 1
                end_pos = token_end_index + 1
        # prepare_validation_features: offsets outside the context become None
        val_offsets = [o if sequence_ids[k] == 1 else None for k, o in enumerate(offsets)]
        lines.append(
            "ids=%s;tt=%s;off=%s;lab=%d,%d\n" % (
                ",".join(map(str, input_ids)),
                ",".join(map(str, enc["token_type_ids"][i])),
                ",".join("-" if o is None else "%d:%d" % tuple(o) for o in val_offsets),
                start_pos, end_pos,
            )
        )
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()[:16], len(lines)


def main():
    model_dir, dev_path, train_path, out_path = sys.argv[1:5]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert tokenizer.is_fast and tokenizer.padding_side == "right"
    rows = []
    for split, path, limit in (("dev", dev_path, None), ("train", train_path, TRAIN_QUESTIONS)):
        for qid, question, context, answers in examples(load(path), limit):
            q_len = len(tokenizer(question.lstrip(), add_special_tokens=False)["input_ids"])
            if q_len > MAX_QUERY_LEN:
                rows.append("%s\t%s\tlong-question\t0\n" % (split, qid))
                continue
            digest, n_windows = digest_question(tokenizer, question, context, answers)
            rows.append("%s\t%s\t%s\t%d\n" % (split, qid, digest, n_windows))
    with gzip.GzipFile(out_path, "wb", mtime=0) as f:
        f.write("".join(rows).encode("utf-8"))
    print("wrote %d question digests to %s" % (len(rows), out_path))


if __name__ == "__main__":
    main()
