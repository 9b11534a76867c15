#!/usr/bin/env bash
# POST /evaluate of all of dev v1.1 through two bertqa binaries serving the same model folder,
# alternated A, B, A, B: EM, F1, questions/s, milliseconds. Pauses a running finetune meanwhile.
# Usage: scripts/compare-evaluate-speed.sh BIN_A BIN_B [MODEL_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
a="${1:?usage: scripts/compare-evaluate-speed.sh BIN_A BIN_B [MODEL_DIR]}"; b="${2:?binary B}"
model="${3:-models/minilm-l6-squad1}"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/native/onnxruntime/libonnxruntime.so.1.31.1}"
D="${BERTQA_SQUAD_DIR:-../shared/data/squad}/dev-v1.1.json.gz"
pkill -STOP finetune || true
trap 'pkill -CONT finetune || true' EXIT
for round in 1 2; do
  for side in A B; do
    bin=$a; [[ $side == B ]] && bin=$b
    "$bin" serve --model-dir "$model" --threads 2 --host 127.0.0.1 --port 18091 >/dev/null 2>&1 &
    pid=$!
    scripts/wait-ready.sh 18091 >/dev/null
    r=$(curl -sf 'localhost:18091/evaluate' -H 'content-type: application/gzip' --data-binary @"$D")
    echo "$side round $round: $(echo "$r" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["exact_match"], d["f1"], d["questions_per_second"], d["duration_ms"])')"
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done
