"""Reference scores from the official SQuAD evaluation logic, for `tests/official_scores.rs`.

The functions below follow the official `evaluate-v1.1.py` and `evaluate-v2.0.py`
(rajpurkar/SQuAD-explorer) statement for statement. Several prediction sets are built from the
dev files by simple rules that the Rust test rebuilds the same way; only the resulting numbers
are committed (tests/fixtures/official-scores.json).

Usage: python scripts/reference/official_scores.py SQUAD_DIR OUT.json   (standard library only)
"""
import collections
import gzip
import json
import re
import string
import sys
from collections import Counter, OrderedDict


# ---- evaluate-v1.1.py -------------------------------------------------------------------
def normalize_answer(s):
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def f1_score(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def exact_match_score(prediction, ground_truth):
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    return max(metric_fn(prediction, gt) for gt in ground_truths)


def evaluate_v1(dataset, predictions):
    f1 = exact_match = total = 0
    for article in dataset:
        for paragraph in article['paragraphs']:
            for qa in paragraph['qas']:
                total += 1
                if qa['id'] not in predictions:
                    continue
                ground_truths = list(map(lambda x: x['text'], qa['answers']))
                prediction = predictions[qa['id']]
                exact_match += metric_max_over_ground_truths(exact_match_score, prediction, ground_truths)
                f1 += metric_max_over_ground_truths(f1_score, prediction, ground_truths)
    exact_match = 100.0 * exact_match / total
    f1 = 100.0 * f1 / total
    return {'exact_match': exact_match, 'f1': f1}


# ---- evaluate-v2.0.py -------------------------------------------------------------------
def make_qid_to_has_ans(dataset):
    qid_to_has_ans = {}
    for article in dataset:
        for p in article['paragraphs']:
            for qa in p['qas']:
                qid_to_has_ans[qa['id']] = bool(qa['answers'])
    return qid_to_has_ans


def get_tokens(s):
    if not s:
        return []
    return normalize_answer(s).split()


def compute_exact(a_gold, a_pred):
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def compute_f1(a_gold, a_pred):
    gold_toks = get_tokens(a_gold)
    pred_toks = get_tokens(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def get_raw_scores(dataset, preds):
    exact_scores = {}
    f1_scores = {}
    for article in dataset:
        for p in article['paragraphs']:
            for qa in p['qas']:
                qid = qa['id']
                gold_answers = [a['text'] for a in qa['answers'] if normalize_answer(a['text'])]
                if not gold_answers:
                    gold_answers = ['']
                if qid not in preds:
                    continue
                a_pred = preds[qid]
                exact_scores[qid] = max(compute_exact(a, a_pred) for a in gold_answers)
                f1_scores[qid] = max(compute_f1(a, a_pred) for a in gold_answers)
    return exact_scores, f1_scores


def apply_no_ans_threshold(scores, na_probs, qid_to_has_ans, na_prob_thresh):
    new_scores = {}
    for qid, s in scores.items():
        pred_na = na_probs[qid] > na_prob_thresh
        if pred_na:
            new_scores[qid] = float(not qid_to_has_ans[qid])
        else:
            new_scores[qid] = s
    return new_scores


def make_eval_dict(exact_scores, f1_scores, qid_list=None):
    if not qid_list:
        total = len(exact_scores)
        return OrderedDict([
            ('exact', 100.0 * sum(exact_scores.values()) / total),
            ('f1', 100.0 * sum(f1_scores.values()) / total),
            ('total', total),
        ])
    total = len(qid_list)
    return OrderedDict([
        ('exact', 100.0 * sum(exact_scores[k] for k in qid_list) / total),
        ('f1', 100.0 * sum(f1_scores[k] for k in qid_list) / total),
        ('total', total),
    ])


def merge_eval(main_eval, new_eval, prefix):
    for k in new_eval:
        main_eval['%s_%s' % (prefix, k)] = new_eval[k]


def find_best_thresh(preds, scores, na_probs, qid_to_has_ans):
    num_no_ans = sum(1 for k in qid_to_has_ans if not qid_to_has_ans[k])
    cur_score = num_no_ans
    best_score = cur_score
    best_thresh = 0.0
    qid_list = sorted(na_probs, key=lambda k: na_probs[k])
    for qid in qid_list:
        if qid not in scores:
            continue
        if qid_to_has_ans[qid]:
            diff = scores[qid]
        else:
            if preds[qid]:
                diff = -1
            else:
                diff = 0
        cur_score += diff
        if cur_score > best_score:
            best_score = cur_score
            best_thresh = na_probs[qid]
    return 100.0 * best_score / len(scores), best_thresh


def evaluate_v2(dataset, preds, na_probs=None, na_prob_thresh=1.0):
    na_prob_file = na_probs is not None
    if not na_prob_file:
        na_probs = {k: 0.0 for k in preds}
    qid_to_has_ans = make_qid_to_has_ans(dataset)
    has_ans_qids = [k for k, v in qid_to_has_ans.items() if v]
    no_ans_qids = [k for k, v in qid_to_has_ans.items() if not v]
    exact_raw, f1_raw = get_raw_scores(dataset, preds)
    exact_thresh = apply_no_ans_threshold(exact_raw, na_probs, qid_to_has_ans, na_prob_thresh)
    f1_thresh = apply_no_ans_threshold(f1_raw, na_probs, qid_to_has_ans, na_prob_thresh)
    out_eval = make_eval_dict(exact_thresh, f1_thresh)
    if has_ans_qids:
        merge_eval(out_eval, make_eval_dict(exact_thresh, f1_thresh, qid_list=has_ans_qids), 'HasAns')
    if no_ans_qids:
        merge_eval(out_eval, make_eval_dict(exact_thresh, f1_thresh, qid_list=no_ans_qids), 'NoAns')
    if na_prob_file:
        best_exact, exact_t = find_best_thresh(preds, exact_raw, na_probs, qid_to_has_ans)
        best_f1, f1_t = find_best_thresh(preds, f1_raw, na_probs, qid_to_has_ans)
        out_eval['best_exact'] = best_exact
        out_eval['best_exact_thresh'] = exact_t
        out_eval['best_f1'] = best_f1
        out_eval['best_f1_thresh'] = f1_t
    return out_eval


# ---- prediction sets (rebuilt identically by tests/official_scores.rs) --------------------
def prediction_sets(dataset):
    sets = {name: {} for name in ('gold', 'empty', 'first_sentence', 'missing_half', 'perturbed')}
    na_probs = {}
    i = 0
    for article in dataset:
        for p in article['paragraphs']:
            context = p['context']
            for qa in p['qas']:
                answers = qa['answers']
                gold = answers[0]['text'] if answers else ''
                qid = qa['id']
                sets['gold'][qid] = gold
                sets['empty'][qid] = ''
                sets['first_sentence'][qid] = context.split('. ')[0]
                if i % 2 == 0:
                    sets['missing_half'][qid] = gold
                kind = i % 4
                if kind == 0:
                    pert = gold.upper()
                elif kind == 1:
                    pert = 'The ' + gold + '!'
                elif kind == 2:
                    pert = gold.split()[-1] if gold.split() else ''
                else:
                    s = answers[0]['answer_start'] if answers else 0
                    pert = context[max(0, s - 10): s + len(gold) + 10] if answers else ''
                sets['perturbed'][qid] = pert
                na_probs[qid] = ((i * 7919) % 1000) / 1000.0
                i += 1
    return sets, na_probs


def main():
    squad_dir, out_path = sys.argv[1:3]
    out = {}
    with gzip.open(squad_dir + '/dev-v1.1.json.gz', 'rt', encoding='utf-8') as f:
        v1 = json.load(f)['data']
    sets, _ = prediction_sets(v1)
    out['dev-v1.1'] = {name: evaluate_v1(v1, preds) for name, preds in sets.items()}
    with gzip.open(squad_dir + '/dev-v2.0-rebuilt.json.gz', 'rt', encoding='utf-8') as f:
        v2 = json.load(f)['data']
    sets, na_probs = prediction_sets(v2)
    del sets['missing_half']  # the official v2.0 script fails on missing predictions
    cases = {}
    for name, preds in sets.items():
        cases[name] = evaluate_v2(v2, preds)
        cases[name + '+na_probs'] = evaluate_v2(v2, preds, na_probs)
    cases['perturbed+na_probs+thresh0.5'] = evaluate_v2(v2, sets['perturbed'], na_probs, 0.5)
    out['dev-v2.0'] = cases
    with open(out_path, 'w') as f:
        json.dump(out, f, indent=1)
        f.write('\n')
    print(json.dumps(out, indent=1))


if __name__ == '__main__':
    main()
