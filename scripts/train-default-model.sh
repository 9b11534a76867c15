#!/usr/bin/env bash
# Trains the default model (all-MiniLM-L6-v2 on SQuAD v1.1, 2 epochs) into OUT, resuming from OUT/last/ when it exists: run it again after any interruption (machine
# restart, Ctrl-C, end of a session) and it goes on from the last checkpoint (every 200 steps).
# Runs at nice 19 so that it only takes cores nobody else wants. Evaluates on all of dev at
# each epoch end and exports OUT/model/ (fp32 + int8 in the shipped form) when it finishes.
# With BERTQA_NEGATIVES=0.5 it adds one unanswerable example for every other question (finetune
# --negatives) and exports a SQuAD v2.0 model (one that can answer nothing).
# Usage: [BERTQA_NEGATIVES=0.5] scripts/train-default-model.sh [OUT]
#        (default OUT: ~/.cache/bertqa/runs/minilm-squad1-e2)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$HOME/.cache/bertqa/runs/minilm-squad1-e2}"
squad="${BERTQA_SQUAD_DIR:-../shared/data/squad}"
scripts/setup-native.sh >/dev/null
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bertqa/target}"
cargo build --quiet --release --features train --bin finetune
export ORT_DYLIB_PATH="$PWD/native/onnxruntime/libonnxruntime.so.1.31.1"
export LD_LIBRARY_PATH="$PWD/native/libtorch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
resume=(); [[ -d $out/last ]] && resume=(--resume)
exec nice -n 19 "$CARGO_TARGET_DIR/release/finetune" \
  --model native/models/all-MiniLM-L6-v2 \
  --train "$squad/train-v1.1-rebuilt.json.gz" --dev "$squad/dev-v1.1.json.gz" \
  --out "$out" --epochs 2 --lr 5e-5 --batch-size 32 --eval-every 0 --patience 0 \
  --save-every 200 --threads 2 --quiet "${resume[@]}"
