#!/usr/bin/env bash
# Starts `bertqa serve` on a model folder, with a clear message when the folder is missing.
# Usage: scripts/run-server.sh MODEL_DIR [extra serve flags]
set -euo pipefail
model_dir="${1:?usage: scripts/run-server.sh MODEL_DIR}"
shift
if [[ ! -f "$model_dir/bertqa.json" ]]; then
  echo "run-server: no model folder at '$model_dir' (it needs bertqa.json, model.onnx, tokenizer.json)." >&2
  echo "run-server: export one with `bertqa export`, or name another with MODEL_DIR=/path/to/model make run" >&2
  exit 1
fi
exec cargo run --release --bin bertqa -- serve --model-dir "$model_dir" "$@"
