#!/usr/bin/env bash
# Inference throughput: our ONNX graphs in ONNX Runtime (fp32, int8) vs Hugging Face torch
# (fp32, bf16 autocast), same weights (all-MiniLM-L6-v2 encoder + the fixture QA head, or
# CHECKPOINT), same shapes, one run; rewrites the "Inference" section of bench/RESULTS.md.
# Usage: scripts/bench-engine.sh [CHECKPOINT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(scripts/bench-venv.sh --with-torch)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
checkpoint="${1:-}"
if [[ -z "$checkpoint" ]]; then
  checkpoint="$work/checkpoint"
  mkdir -p "$checkpoint"
  cp native/models/all-MiniLM-L6-v2/{config.json,tokenizer.json} "$checkpoint/"
  "$python" - "$checkpoint" <<'PY'
import sys
from safetensors.torch import load_file, save_file
d = sys.argv[1]
weights = {"bert." + k: v for k, v in load_file("native/models/all-MiniLM-L6-v2/model.safetensors").items()
           if not k.startswith("pooler") and "position_ids" not in k}
weights.update(load_file("tests/fixtures/qa-head.safetensors"))
save_file({k: v.contiguous() for k, v in weights.items()}, d + "/model.safetensors")
PY
fi
cargo run --quiet --release -- export --checkpoint "$checkpoint" --out "$work/model" --int8 2>/dev/null
cargo run --quiet --release -- export --checkpoint "$checkpoint" --out "$work/fused" --int8 --ops fused 2>/dev/null
cargo run --quiet --release -- export --checkpoint "$checkpoint" --out "$work/rowwise" --int8 \
  --int8-mode int8-rowwise --calibration-data "${BERTQA_SQUAD_DIR:-../shared/data/squad}/train-v1.1-rebuilt.json.gz" 2>/dev/null
ours="$(BERTQA_BENCH_MODEL="$work/model" cargo bench --quiet --bench engine 2>/dev/null | grep '^ort-')"
fused="$(BERTQA_BENCH_MODEL="$work/fused" BERTQA_BENCH_LABEL=ort-fused cargo bench --quiet --bench engine 2>/dev/null | grep '^ort-fused-')"
rowwise="$(BERTQA_BENCH_MODEL="$work/rowwise" BERTQA_BENCH_LABEL=ort-rowwise cargo bench --quiet --bench engine 2>/dev/null | grep '^ort-rowwise-int8')"
hf="$("$python" bench/engine_hf.py "$checkpoint" 2>/dev/null | grep '^hf-')"
table="$(printf '%s\n%s\n%s\n%s\n' "$ours" "$fused" "$rowwise" "$hf" | python3 -c '
import re, sys
rows = {}
for line in sys.stdin:
    m = re.match(r"(\S+) b=(\d+) L=(\d+): ([\d.]+)", line)
    if m:
        rows.setdefault((int(m[2]), int(m[3])), {})[m[1]] = float(m[4])
names = ["ort-fp32", "ort-int8", "ort-fused-fp32", "ort-fused-int8", "ort-rowwise-int8", "hf-torch-fp32", "hf-torch-bf16"]
print("| batch x seq | " + " | ".join(names) + " | int8 / best HF | rowwise-int8 / best HF |")
print("| --- | " + " | ".join("---" for _ in names) + " | --- | --- |")
for (b, l), r in sorted(rows.items()):
    best_hf = max(r.get("hf-torch-fp32", 0), r.get("hf-torch-bf16", 0)) or float("nan")
    print("| %dx%d | " % (b, l) + " | ".join("%.1f" % r.get(n, float("nan")) for n in names) + " | %.2fx | %.2fx |" % (r.get("ort-int8", 0) / best_hf, r.get("ort-rowwise-int8", 0) / best_hf))
')"
section="$(cat <<MD
<!-- engine:begin -->
## Inference (windows/s; all-MiniLM-L6-v2 + QA head, every token real)

\`ort-*\`: our default graph (standard ops, fused by ONNX Runtime's optimizer), int8 per tensor;
\`ort-fused-*\`: the same model written with ORT's contrib kernels (\`bertqa export --ops fused\`);
\`ort-rowwise-int8\`: the int8 form the default model shipped until 2026-12-06 (per-token activations
after SmoothQuant, calibrated on 128 training questions).

Measured $(date -u +%Y-%m-%d) on $(nproc) cores of "$(lscpu | sed -n 's/^Model name: *//p')" by \`scripts/bench-engine.sh\`
(ONNX Runtime 1.31.1 with all cores; torch $("$python" -c 'import torch; print(torch.__version__)') with its default threads).

$table
<!-- engine:end -->
MD
)"
scripts/bench-section.py bench/RESULTS.md engine "$section"
echo "$section"
