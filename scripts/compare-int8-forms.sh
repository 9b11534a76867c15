#!/usr/bin/env bash
# Two bertqa binaries' int8 exports of one checkpoint, side by side on all of dev v1.1: EM/F1 of
# fp32 and of each int8 graph, agreement with fp32 and between them, and questions/s (runs
# alternate A, B, A, B). How bench/RESULTS.md's "int8 on every CPU" table was made, with the
# binary of commit 8958381 as A and the pair-bounded one as B.
# Usage: scripts/compare-int8-forms.sh BIN_A BIN_B CHECKPOINT OUT [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
a="${1:?usage: scripts/compare-int8-forms.sh BIN_A BIN_B CHECKPOINT OUT [THREADS]}"
b="${2:?binary B}"; checkpoint="${3:?checkpoint}"; out="${4:?output folder}"; threads="${5:-2}"
squad="${BERTQA_SQUAD_DIR:-../shared/data/squad}"
dev="$squad/dev-v1.1.json.gz"; train="$squad/train-v1.1-rebuilt.json.gz"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/native/onnxruntime/libonnxruntime.so.1.31.1}"
mkdir -p "$out"
for side in a b; do
  bin=$a; [[ $side == b ]] && bin=$b
  "$bin" export --checkpoint "$checkpoint" --out "$out/$side" --int8 --int8-mode int8-rowwise \
    --calibration-data "$train" 2>"$out/export-$side.log"
done
# Older binaries choose the int8 graph with --int8, newer ones with --graph int8.
int8_flag() { if "$1" predict --help | grep -q -- '--graph'; then echo --graph int8; else echo --int8; fi; }
fp32_flag() { if "$1" predict --help | grep -q -- '--graph'; then echo --graph fp32; fi; }
# shellcheck disable=SC2046
"$b" predict --model-dir "$out/b" --data "$dev" --out "$out/fp32.json" $(fp32_flag "$b") \
  --threads "$threads" 2>"$out/predict-fp32.log"
for round in 1 2; do
  for side in a b; do
    bin=$a; [[ $side == b ]] && bin=$b
    # shellcheck disable=SC2046
    "$bin" predict --model-dir "$out/$side" --data "$dev" --out "$out/$side-$round.json" \
      $(int8_flag "$bin") --threads "$threads" 2>"$out/predict-$side-$round.log"
  done
done
for name in fp32 a-1 b-1; do
  echo "$name $("$b" score "$dev" "$out/$name.json" | tr -d '\n ')"
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
f, a, b = (json.load(open(f"{out}/{n}.json")) for n in ("fp32", "a-1", "b-1"))
same = lambda x, y: 100.0 * sum(x[k] == y[k] for k in x) / len(x)
print(f"A same as fp32 {same(a, f):.2f}%, B same as fp32 {same(b, f):.2f}%, A same as B {same(a, b):.2f}%")
PY
tail -qn1 "$out"/predict-*.log
