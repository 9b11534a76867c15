#!/usr/bin/env bash
# Training speed, finetune (fp32 and bf16) vs the Hugging Face Trainer (bf16 autocast, padded
# to 384 as run_qa.py does, and with dynamic padding), same model, same first QUESTIONS train
# questions (~1 window each), batch 16, side by side in one run; rewrites the "Training"
# section of bench/RESULTS.md. Usage: scripts/bench-train.sh [SQUAD_DIR] [QUESTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
squad="${1:-../shared/data/squad}"
questions="${2:-2000}"
python="$(scripts/bench-venv.sh --with-torch)"
model=native/models/all-MiniLM-L6-v2
cargo build --quiet --release --features train --bin finetune
ours() {
  local out; out="$(mktemp -d)"
  ./target/release/finetune --model "$model" --train "$squad/train-v1.1-rebuilt.json.gz" \
    --dev "$squad/dev-v1.1.json.gz" --dev-limit 10 --train-limit "$questions" --batch-size 16 \
    --epochs 1 --precision "$1" --out "$out" --quiet >"$out/summary.json" 2>/dev/null
  python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print('%d windows, %.1f s, %.2f windows/s' % (s['data']['windows'], s['train_seconds'], s['windows_per_second']))" "$out/summary.json"
  rm -rf "$out"
}
bf16="$(ours bf16)"
fp32="$(ours fp32)"
hf_dyn="$("$python" bench/train_hf.py "$model" "$squad/train-v1.1-rebuilt.json.gz" "$questions" dynamic 2>/dev/null | grep '^hf-train')"
hf_pad="$("$python" bench/train_hf.py "$model" "$squad/train-v1.1-rebuilt.json.gz" "$questions" max_length 2>/dev/null | grep '^hf-train')"
# mmap_max=0 + a huge trim_threshold: glibc never hands freed memory back to the kernel.
hf_kept="$(GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 \
  "$python" bench/train_hf.py "$model" "$squad/train-v1.1-rebuilt.json.gz" "$questions" dynamic 2>/dev/null | grep '^hf-train')"
section="$(cat <<MD
<!-- train:begin -->
## Training (all-MiniLM-L6-v2 + QA head, first $questions SQuAD v1.1 train questions, batch 16)

Measured $(date -u +%Y-%m-%d) on $(nproc) cores of "$(lscpu | sed -n 's/^Model name: *//p')" by \`scripts/bench-train.sh\`.
Training steps only (data preparation and evaluation excluded), one epoch.

| implementation | result |
| --- | --- |
| bertqa \`finetune\`, bf16, length-bucketed batches (the default on this CPU) | $bf16 |
| bertqa \`finetune\`, fp32, length-bucketed batches | $fp32 |
| HF Trainer, bf16 autocast, padded to 384 (run_qa.py default) | ${hf_pad#hf-train max_length: } |
| HF Trainer, bf16 autocast, dynamic padding + group_by_length | ${hf_dyn#hf-train dynamic: } |
| the same, glibc malloc keeping freed memory (\`GLIBC_TUNABLES\`) | ${hf_kept#hf-train dynamic: } |
<!-- train:end -->
MD
)"
scripts/bench-section.py bench/RESULTS.md train "$section"
echo "$section"
