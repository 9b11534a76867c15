#!/usr/bin/env bash
# Feature building (tokenize + window SQuAD v1.1 dev) ours vs Hugging Face's run_qa.py
# preprocessing, side by side in one run; rewrites the "Feature building" section of
# bench/RESULTS.md. Usage: scripts/bench-features.sh [SQUAD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
squad="${1:-../shared/data/squad}"
python="$(scripts/bench-venv.sh)"
model=native/models/all-MiniLM-L6-v2
ours="$(BERTQA_SQUAD_DIR="$squad" cargo bench --quiet --bench features 2>/dev/null | grep '^features:')"
hf_default="$("$python" bench/features_hf.py "$model" "$squad/dev-v1.1.json.gz" 2>/dev/null | grep '^hf-features:')"
hf_one="$(TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 "$python" bench/features_hf.py "$model" "$squad/dev-v1.1.json.gz" 2>/dev/null | grep '^hf-features:')"
section="$(cat <<MD
<!-- features:begin -->
## Feature building (SQuAD v1.1 dev, 10,570 questions, max_seq_len 384, stride 128)

Measured $(date -u +%Y-%m-%d) on $(nproc) cores of "$(lscpu | sed -n 's/^Model name: *//p')" by \`make bench-features\`.

| implementation | result |
| --- | --- |
| bertqa \`Featurizer::windows\`, 1 thread | ${ours#features: } |
| HF fast tokenizer + run_qa offsets, batched by 1,000, default threads | ${hf_default#hf-features: } |
| HF fast tokenizer + run_qa offsets, batched by 1,000, 1 thread | ${hf_one#hf-features: } |
<!-- features:end -->
MD
)"
scripts/bench-section.py bench/RESULTS.md features "$section"
echo "$section"
