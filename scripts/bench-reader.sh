#!/usr/bin/env bash
# The reader over many passages: `bertqa evaluate-passages` on the default model (release
# build), each dev v1.1 question of articles 24-47 (those `bertqa calibrate` did not fit on)
# with its own paragraph among N - 1 distractors, for each N, ranked and scored by each
# scoring. Rewrites the "reader" section of bench/RESULTS.md.
# Usage: scripts/bench-reader.sh [QUESTIONS] [COUNTS]   (default 1000, 1,5,20)
set -euo pipefail
cd "$(dirname "$0")/.."
questions="${1:-1000}"
counts="${2:-1,5,20}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bertqa/target}"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/native/onnxruntime/libonnxruntime.so.1.31.1}"
cargo build --quiet --release --bin bertqa
lines="$("$CARGO_TARGET_DIR/release/bertqa" evaluate-passages --model-dir models/minilm-l6-squad1 \
  --data "${BERTQA_SQUAD_DIR:-../shared/data/squad}/dev-v1.1.json.gz" --from-article 24 \
  --questions "$questions" --passages "$counts")"
echo "$lines"
table="$(echo "$lines" | python3 scripts/lib/passages_table.py)"
calibration="$(python3 -c 'import json; c = json.load(open("models/minilm-l6-squad1/bertqa.json"))["score_calibration"]; print("span weight %.4f, margin weight %.4f, bias %.3f; fitted on %d questions (%d spans) of %s; held-out ECE %.3f own passage, %.3f with distractors, on %d questions" % (c["span_weight"], c["margin_weight"], c["bias"], c["fit_questions"], c["fit_samples"], c["data"], c["ece_own_passage"], c["ece_with_distractors"], c["held_out_questions"]))')"
# shellcheck source=scripts/lib/cpu.sh
source scripts/lib/cpu.sh
section="$(cat <<MD
<!-- reader:begin -->
## Reader: many passages per question, calibrated scores

Each dev v1.1 question of articles 24-47 (the first $questions) with its own paragraph hidden among
N − 1 others (half from its article, the rest from other articles, none holding a gold answer;
seed 42), every passage decoded by the default model's int8 graph, the question answered as
\`/answer\` answers \`contexts\`. "passage probability" is the old score (softmax over the top 20
spans of each passage), "span logits" ranks by start + end logit (what an uncalibrated model
folder does), "calibrated" by the fitted probability of being right. The model's calibration
(\`bertqa calibrate\`, articles 0-23): $calibration.
CPU: $(cpu_summary), measured $(date -u +%Y-%m-%d).
Command: \`scripts/bench-reader.sh $questions $counts\`.

$table
<!-- reader:end -->
MD
)"
scripts/bench-section.py bench/RESULTS.md reader "$section"
