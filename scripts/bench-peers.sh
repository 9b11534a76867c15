#!/usr/bin/env bash
# bertqa against the peers users would pick instead, same weights, same dev questions, one run:
# Python ONNX Runtime with stock dynamic int8 (torch.onnx.export + quantize_dynamic per-channel,
# bench/serve_ort.py) and the Hugging Face pipeline (bench/serve_hf.py), each behind a minimal
# FastAPI server and measured by the same load client (benches/load.rs) as `bertqa serve`;
# the Python ORT forms in-process too; and the accuracy of every int8 form on dev. Rewrites the
# "peers" section of bench/RESULTS.md. Stop anything else using the cores first.
# bertqa and Python ONNX Runtime take turns for ROUNDS rounds (this host's speed drifts by up to
# a third between minutes, so one round each can favour either); the HF pipeline runs once.
# Usage: scripts/bench-peers.sh MODEL_DIR CHECKPOINT_DIR|- [QUESTIONS] [LEVELS] [ACCURACY_QUESTIONS] [ROUNDS] [WORKERSxTHREADS|"SERVE FLAGS"]
#   MODEL_DIR: bertqa model folder (its int8 graph is served); CHECKPOINT_DIR: the same weights
#   in Hugging Face layout (finetune's best/), or - to recover them from MODEL_DIR's graph
#   (bench/checkpoint_from_graph.py: its int8 weights dequantized, smoothing undone), for when
#   the training run's checkpoint is not on this machine. WORKERSxTHREADS (e.g. 2x1) adds
#   `bertqa serve --workers W --threads T` to every round beside the default settings; any
#   other last argument is taken as `bertqa serve` flags to add the same way (e.g.
#   "--kernels fused").
#   Defaults: 1000 questions, 1,8,32,64, 2000, 3, none.
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:?usage: scripts/bench-peers.sh MODEL_DIR CHECKPOINT_DIR|- [QUESTIONS] [LEVELS] [ACCURACY_QUESTIONS] [ROUNDS] [WORKERSxTHREADS]}"
checkpoint="${2:?checkpoint folder (Hugging Face layout) of the same weights}"
checkpoint_arg="$checkpoint"
questions="${3:-1000}"
levels="${4:-1,8,32,64}"
accuracy_questions="${5:-2000}"
rounds="${6:-3}"
split="${7:-}"
# The second bertqa configuration, when asked for: its flags and its label.
if [[ $split =~ ^[0-9]+x[0-9]+$ ]]; then
  extra=(--workers "${split%x*}" --threads "${split#*x}")
  extra_label="workers-$split"
else
  read -r -a extra <<<"$split"
  extra_label="$(tr -s ' -' '-' <<<"$split" | sed 's/^-//')"
fi
python="$(scripts/bench-venv.sh --with-torch)"
weights="the training run's checkpoint"
if [[ $checkpoint == - ]]; then
  checkpoint="$HOME/.cache/bertqa/peers/recovered/$(basename "$model")"
  "$python" bench/checkpoint_from_graph.py "$model" "$checkpoint" >&2
  weights="its graph's int8 weights dequantized, smoothing undone, into a Hugging Face checkpoint (\`bench/checkpoint_from_graph.py\`)"
fi
# shellcheck source=scripts/lib/load.sh
source scripts/lib/load.sh
load_setup
trap 'load_cleanup; kill "${peer:-}" 2>/dev/null || true' EXIT
graphs="$HOME/.cache/bertqa/peers/$(basename "$checkpoint")"
# A recovered checkpoint is rewritten every run, so its graphs are too.
[[ -f $graphs/model-int8.onnx && $checkpoint_arg != - ]] ||
  "$python" bench/serve_ort.py "$checkpoint" build "$graphs" >&2

peer_http() { # LABEL COMMAND...
  local label="$1"
  shift
  "$@" >/dev/null 2>&1 &
  peer=$!
  scripts/wait-ready.sh 18095 300
  load 18095 "$label" "$questions" "$levels"
  kill -TERM "$peer" && wait "$peer" || true
  peer=""
}
for _ in $(seq "$rounds"); do
  load_bare 18094 bertqa-int8 "$questions" "$levels" --model-dir "$model"
  if [[ -n $split ]]; then
    load_bare 18094 "bertqa-int8-$extra_label" "$questions" "$levels" --model-dir "$model" \
      "${extra[@]}"
  fi
  peer_http ort-python-int8 "$python" bench/serve_ort.py "$checkpoint" serve "$graphs" 18095 int8
done
peer_http hf-pipeline-fp32 "$python" bench/serve_hf.py "$checkpoint" serve 18095 fp32
inprocess="$("$python" bench/serve_ort.py "$checkpoint" inprocess "$graphs" "$DATA" "$questions" 2>/dev/null)"
accuracy="$("$python" bench/serve_ort.py "$checkpoint" accuracy "$graphs" "$DATA" "$accuracy_questions" 2>/dev/null)"
"$CARGO_TARGET_DIR/release/bertqa" serve --model-dir "$model" --host 127.0.0.1 --port 18096 \
  --log-format json >/dev/null 2>&1 &
peer=$!
scripts/wait-ready.sh 18096
ours="$(curl -s "http://127.0.0.1:18096/evaluate?limit=$accuracy_questions" \
  -H 'content-type: application/gzip' --data-binary @"$DATA" |
  python3 -c 'import json, sys; r = json.load(sys.stdin); print("EM %.2f F1 %.2f over %d questions" % (r["exact_match"], r["f1"], r["total"]))')"
kill -TERM "$peer" && wait "$peer" || true
peer=""
echo "$LINES"; echo "$inprocess"; echo "$accuracy"; echo "bertqa int8: $ours"
table="$(echo "$LINES" | python3 scripts/lib/load_table.py)"
# shellcheck source=scripts/lib/cpu.sh
source scripts/lib/cpu.sh
section="$(cat <<MD
<!-- peers:begin -->
## bertqa against Python ONNX Runtime int8 and the HF pipeline

Same fine-tuned weights (\`$(basename "$model")\` and, for the peers, $weights), the same load client
(\`benches/load.rs\`, on the same cores), the first $questions dev v1.1 questions, one run;
bertqa and Python ONNX Runtime took turns for $rounds rounds, the HF pipeline ran once:
\`bertqa serve\` (its shipped int8 graph, default settings${split:+, and \`${extra[*]}\`}); Python ONNX Runtime with stock
dynamic int8 (\`torch.onnx.export\` + \`quantize_dynamic\` per-channel QInt8, run_qa's windows
and n-best search, \`bench/serve_ort.py\`) behind FastAPI/uvicorn; the Hugging Face
\`pipeline("question-answering")\` fp32 behind the same FastAPI server.
CPU: $(cpu_summary), measured $(date -u +%Y-%m-%d).
Command: \`scripts/bench-peers.sh $model $checkpoint_arg $questions $levels $accuracy_questions $rounds ${split:+\"$split\"}\`.

$table

In-process, one question per call (Python ONNX Runtime, default threads):
$(echo "$inprocess" | sed 's/^/- /')

Accuracy on the first $accuracy_questions dev questions:
$(echo "$accuracy" | sed 's/^/- /')
- bertqa int8 (\`POST /evaluate?limit=$accuracy_questions\`, official scoring): $ours
<!-- peers:end -->
MD
)"
scripts/bench-section.py bench/RESULTS.md peers "$section"
