#!/usr/bin/env bash
# A whole SQuAD file evaluated both ways on one release server: `POST /evaluate` (one request)
# and a `POST /evaluations` job followed every second (how often its progress moved, what
# `remaining_ms` said against what was left). Prints one JSON line per way with the CPU.
# BERTQA_BIN=PATH serves with another bertqa binary (an older build, for an A/B);
# BERTQA_EVALUATION_WAYS="sync" skips the job (for a binary without /evaluations).
# Usage: scripts/bench-evaluations.sh [MODEL_DIR] [SQUAD_FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-models/minilm-l6-squad1}"
file="${2:-${BERTQA_SQUAD_DIR:-../shared/data/squad}/dev-v1.1.json.gz}"
# shellcheck source=scripts/lib/cpu.sh
source scripts/lib/cpu.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bertqa/target}"
bin="${BERTQA_BIN:-$CARGO_TARGET_DIR/release/bertqa}"
[[ -n ${BERTQA_BIN:-} ]] || cargo build --quiet --release --bin bertqa
ways="${BERTQA_EVALUATION_WAYS:-sync job}"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/native/onnxruntime/libonnxruntime.so.1.31.1}"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RUST_LOG=warn "$bin" serve --model-dir "$model" --host 127.0.0.1 --port "$port" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
scripts/wait-ready.sh "$port" 120
url="http://127.0.0.1:$port"
cpu="$(cpu_summary)"
if [[ $ways == *sync* ]]; then
  started=$(date +%s.%N)
  result=$(curl -sf "$url/evaluate" -H 'content-type: application/gzip' --data-binary "@$file")
  WALL=$(echo "$(date +%s.%N) - $started" | bc) CPU="$cpu" BIN="$bin" python3 -c '
import json, os, sys; r = json.loads(sys.argv[1])
print(json.dumps({"way": "POST /evaluate", "binary": os.environ["BIN"], "cpu": os.environ["CPU"],
    "questions": r["total"], "request_seconds": round(float(os.environ["WALL"]), 1),
    "exact_match": r["exact_match"], "f1": r["f1"]}))' "$result"
fi
[[ $ways == *job* ]] || exit 0
location=$(curl -sf -o /dev/null -D - "$url/evaluations" -H 'content-type: application/gzip' \
  --data-binary "@$file" | tr -d '\r' | sed -n 's/^location: //Ip')
URL="$url$location" CPU="$cpu" python3 - <<'PY'
import json, os, time, urllib.request
url, started, seen = os.environ["URL"], time.time(), []
while True:
    status = json.load(urllib.request.urlopen(url))
    seen.append((time.time() - started, status["questions_done"], status.get("remaining_ms")))
    if status["state"] in ("done", "failed", "cancelled"):
        break
    time.sleep(1)
total = time.time() - started
steps = len({done for _, done, _ in seen})
halfway = next(((t, left) for t, done, left in seen if done >= status["questions_total"] / 2), None)
scores = status["result"]["scores"] if status["state"] == "done" else {}
print(json.dumps({"way": "POST /evaluations (job)", "cpu": os.environ["CPU"], "state": status["state"],
    "questions": status["questions_total"], "seconds": round(total, 1), "progress_steps": steps,
    "halfway_at_s": halfway and round(halfway[0], 1),
    "remaining_said_at_halfway_s": halfway and halfway[1] and round(halfway[1] / 1000, 1),
    "exact_match": scores.get("exact_match"), "f1": scores.get("f1")}))
PY
