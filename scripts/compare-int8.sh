#!/usr/bin/env bash
# int8 vs fp32 graph of one model folder on the first N SQuAD dev questions: EM/F1 of each and
# how often their answers agree. Usage: scripts/compare-int8.sh MODEL_DIR [N] [DATA]
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:?usage: scripts/compare-int8.sh MODEL_DIR [N] [DATA]}"
n="${2:-1000}"
data="${3:-../shared/data/squad/dev-v1.1.json.gz}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bertqa() { cargo run --quiet --release -- "$@"; }
bertqa predict --model-dir "$model" --data "$data" --limit "$n" --out "$work/fp32.json" --graph fp32
bertqa predict --model-dir "$model" --data "$data" --limit "$n" --out "$work/int8.json" --graph int8
python3 - "$data" "$n" "$work" <<'PY'
import gzip, json, subprocess, sys
data, n, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
opener = gzip.open if data.endswith(".gz") else open
with opener(data, "rt", encoding="utf-8") as f:
    squad = json.load(f)
# Score both against the same first-N questions (a truncated copy of the file).
left, articles = n, []
for a in squad["data"]:
    paragraphs = []
    for p in a["paragraphs"]:
        take = p["qas"][:left]
        left -= len(take)
        if take:
            paragraphs.append(dict(p, qas=take))
    if paragraphs:
        articles.append(dict(a, paragraphs=paragraphs))
with open(work + "/subset.json", "w") as f:
    json.dump(dict(squad, data=articles), f)
fp32, int8 = (json.load(open(work + "/%s.json" % k)) for k in ("fp32", "int8"))
same = sum(fp32[k] == int8[k] for k in fp32)
for name in ("fp32", "int8"):
    score = subprocess.run(["cargo", "run", "--quiet", "--release", "--", "score", work + "/subset.json", work + "/%s.json" % name],
                           capture_output=True, text=True, check=True).stdout
    print(name, json.dumps(json.loads(score)))
print("same answer text: %d of %d (%.2f%%)" % (same, len(fp32), 100.0 * same / len(fp32)))
PY
