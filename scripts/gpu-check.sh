#!/usr/bin/env bash
# The CUDA execution provider check, on a machine with an NVIDIA GPU and the onnxruntime-gpu
# libraries (ORT_DYLIB_PATH -> libonnxruntime.so.1.31.1 with libonnxruntime_providers_cuda.so and
# libonnxruntime_providers_shared.so beside it; CUDA 13 cuBLAS/cuRAND/cudart on LD_LIBRARY_PATH):
#   1. random MiniLM-L6 and bert-base shaped models, both graph styles: windows/s on CUDA and the
#      largest logit gap to the CPU provider; the Hugging Face torch peer on the same shapes;
#   2. the whole dev set through `bertqa predict --device cuda` (MiniLM shape);
#   3. `bertqa serve --device cuda` under the HTTP load client at 1/8/32/64/128 clients;
#   4. the shipped int8 model on CUDA (quantized products fall back to the CPU) vs the CPU
#      provider on 1,000 dev questions: how many answers agree;
#   5. with TRAINED_FP32_MODEL_DIR (a model folder holding the trained model.onnx): the whole dev
#      set on CUDA through `predict` + `score` and through the server's POST /evaluate, to set
#      beside the CPU provider's EM/F1 of the same graph.
# Usage: scripts/gpu-check.sh OUT_DIR [SQUAD_DEV_FILE] [TRAINED_FP32_MODEL_DIR]
# Binaries: $BERTQA_BIN, $BERTQA_ENGINE_BENCH, $BERTQA_LOAD_BENCH (default: built with cargo).
# Random weights make the answers of steps 1-3 meaningless; their speed is what is measured.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: scripts/gpu-check.sh OUT_DIR [SQUAD_DEV_FILE]}"
dev="${2:-../shared/data/squad/dev-v1.1.json.gz}"
trained="${3:-}"
mkdir -p "$out"
bench_binary() { # NAME: path of a release bench binary, built if missing
  cargo bench --no-run --bench "$1" --message-format=json 2>/dev/null |
    python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin)
      if m.get("executable") and m["target"]["name"] == sys.argv[1]][-1])' "$1"
}
bertqa="${BERTQA_BIN:-}"
if [[ -z "$bertqa" ]]; then
  cargo build --release --quiet
  bertqa=target/release/bertqa
fi
engine_bench="${BERTQA_ENGINE_BENCH:-$(bench_binary engine)}"
load_bench="${BERTQA_LOAD_BENCH:-$(bench_binary load)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"

for shape in minilm-l6-h384 bert-base-uncased; do
  checkpoint="$work/$shape/checkpoint"
  "$bertqa" random-checkpoint --config "bench/configs/$shape.json" \
    --tokenizer models/minilm-l6-squad1/tokenizer.json --out "$checkpoint"
  "$bertqa" export --checkpoint "$checkpoint" --out "$work/$shape/primitive"
  "$bertqa" export --checkpoint "$checkpoint" --out "$work/$shape/fused" --ops fused
  for ops in primitive fused; do
    BERTQA_BENCH_DEVICE=cuda BERTQA_BENCH_MODEL="$work/$shape/$ops" \
      BERTQA_BENCH_LABEL="ort-$ops-$shape" "$engine_bench" | tee -a "$out/engine.txt"
  done
  # The peer's failure (a missing package, say) must not cost the checks after it.
  { python3 bench/engine_hf.py "$checkpoint" cuda 2>>"$out/hf.err" || echo "hf peer failed"; } |
    sed "s/^hf-/hf-$shape-/" | tee -a "$out/engine.txt"
done

minilm="$work/minilm-l6-h384/primitive"
serve_on_gpu() { # MODEL_DIR: start the server in the background, wait until it is ready
  "$bertqa" serve --model-dir "$1" --device cuda --port 8089 --max-batch-size 64 \
    --max-batch-tokens 24576 >>"$out/serve.log" 2>&1 &
  server=$!
  scripts/wait-ready.sh 8089 || echo "the server did not start (see serve.log)"
}
stop_server() {
  kill -TERM "$server"
  wait "$server" || echo "server exited with $?"
}
"$bertqa" predict --model-dir "$minilm" --data "$dev" --out "$work/random.json" --device cuda 2>&1 |
  tail -1 | tee "$out/predict.txt"

serve_on_gpu "$minilm"
"$load_bench" http://127.0.0.1:8089/answer "$dev" 4000 1,8,32,64,128 bertqa-cuda |
  tee "$out/load.txt" || echo "load client failed (see serve.log)"
stop_server

for device in cuda cpu; do
  "$bertqa" predict --model-dir models/minilm-l6-squad1 --graph int8 --device "$device" --data "$dev" \
    --limit 1000 --out "$work/int8-$device.json" 2>&1 | tail -1 | tee -a "$out/int8.txt"
done
python3 - "$work/int8-cuda.json" "$work/int8-cpu.json" <<'PY' | tee -a "$out/int8.txt"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
print("int8 cuda vs cpu: same answer on %d of %d questions" % (sum(a[k] == b.get(k) for k in a), len(a)))
PY

if [[ -n "$trained" ]]; then
  "$bertqa" predict --model-dir "$trained" --device cuda --data "$dev" --out "$work/trained.json" \
    2>&1 | tail -1 | tee "$out/trained.txt"
  "$bertqa" score "$dev" "$work/trained.json" | tr -d '\n ' | tee -a "$out/trained.txt"
  echo | tee -a "$out/trained.txt"
  serve_on_gpu "$trained"
  type=application/json
  [[ "$dev" == *.gz ]] && type=application/gzip
  curl -sf -H "content-type: $type" --data-binary @"$dev" http://127.0.0.1:8089/evaluate |
    tee -a "$out/trained.txt"
  stop_server
fi
