#!/usr/bin/env bash
# HTTP load: `bertqa serve` vs Hugging Face pipeline("question-answering") behind FastAPI/uvicorn,
# same fine-tuned weights, same client (benches/load.rs), same dev questions, one run; plus the
# pipeline in-process (fp32 and bf16). Rewrites the "serve" section of bench/RESULTS.md.
# Usage: scripts/bench-serve.sh MODEL_DIR CHECKPOINT_DIR [QUESTIONS] [LEVELS]
#   MODEL_DIR: bertqa model folder; CHECKPOINT_DIR: the same weights in Hugging Face layout.
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:?usage: scripts/bench-serve.sh MODEL_DIR CHECKPOINT_DIR [QUESTIONS] [LEVELS]}"
checkpoint="${2:?checkpoint folder (Hugging Face layout) of the same weights}"
questions="${3:-1000}"
levels="${4:-1,8,32,64}"
python="$(scripts/bench-venv.sh --with-torch)"
source scripts/lib/cpu.sh
source scripts/lib/load.sh
load_setup
data="$DATA"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

measure() { # PORT LABEL
  cargo bench --quiet --bench load -- "http://127.0.0.1:$1/answer" "$data" "$questions" "$levels" "$2" 2>/dev/null
}

"$CARGO_TARGET_DIR/release/bertqa" serve --model-dir "$model" --host 127.0.0.1 --port 18080 --log-format json >/dev/null 2>&1 &
pids+=($!)
scripts/wait-ready.sh 18080
ours="$(measure 18080 bertqa-int8)"
kill -TERM "${pids[-1]}" && wait "${pids[-1]}" || true

"$python" bench/serve_hf.py "$checkpoint" serve 18081 fp32 >/dev/null 2>&1 &
pids+=($!)
scripts/wait-ready.sh 18081
hf="$(measure 18081 hf-pipeline-http-fp32)"
kill -TERM "${pids[-1]}" && wait "${pids[-1]}" || true

inproc="$("$python" bench/serve_hf.py "$checkpoint" inprocess "$data" "$questions" 2>/dev/null | grep '^hf-')"
echo "$ours"; echo "$hf"; echo "$inproc"

table="$(printf '%s\n%s\n' "$ours" "$hf" | python3 -c '
import re, sys
rows = {}
for line in sys.stdin:
    m = re.match(r"(\S+) c=(\d+): ([\d.]+) q/s p50=([\d.]+) p95=([\d.]+) p99=([\d.]+) ms failed=(\d+)", line)
    if m:
        rows.setdefault(int(m[2]), {})[m[1]] = m.groups()[2:]
print("| clients | bertqa q/s | p50 / p95 / p99 ms | HF pipeline (FastAPI) q/s | p50 / p95 / p99 ms | q/s ratio | failed (ours / HF) |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for c, r in sorted(rows.items()):
    a, b = r.get("bertqa-int8"), r.get("hf-pipeline-http-fp32")
    if not a or not b:
        continue
    print("| %d | %s | %s / %s / %s | %s | %s / %s / %s | %.1fx | %s / %s |" % (c, a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3], float(a[0]) / float(b[0]), a[4], b[4]))
')"
section="$(cat <<MD
<!-- serve:begin -->
## HTTP serving (POST /answer, first $questions dev v1.1 questions, loopback)

\`bertqa serve\` (int8 graph, default settings) against Hugging Face \`pipeline("question-answering")\`
(transformers 4.57.6, torch 2.13 CPU, fp32) behind a minimal FastAPI/uvicorn app
(\`bench/serve_hf.py\`), same fine-tuned weights, same load client (\`benches/load.rs\`), run one
after the other with nothing else running ($(cpu_summary); the load client shares
the cores with the server). Command: \`scripts/bench-serve.sh $model $checkpoint $questions $levels\`.

$table

The pipeline in-process, one question at a time (no HTTP): $(echo "$inproc" | tr '\n' ';' | sed 's/;$//; s/;/; /g').
<!-- serve:end -->
MD
)"
scripts/bench-section.py bench/RESULTS.md serve "$section"
