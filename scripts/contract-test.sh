#!/usr/bin/env bash
# The HTTP contract checked by schemathesis: starts `bertqa serve` with the default model on
# a free port and runs `st run openapi.yaml --checks all` against it (positive and negative
# data, status codes, content types, response schemas); any failure fails the script.
# Settings: tests/contract/schemathesis.toml. schemathesis comes from PyPI into
# ~/.cache/bertqa/stvenv (override with BERTQA_ST_VENV).
# Usage: scripts/contract-test.sh [MAX_EXAMPLES]   (default 100 per operation)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${BERTQA_ST_VENV:-$HOME/.cache/bertqa/stvenv}"
package="schemathesis==4.32.5"
# shellcheck source=scripts/lib/venv.sh
source scripts/lib/venv.sh
ensure_venv "$venv" "$package"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bertqa/target}"
cargo build --quiet --bin bertqa
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/native/onnxruntime/libonnxruntime.so.1.31.1}"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log="$(mktemp)"
"$CARGO_TARGET_DIR/debug/bertqa" serve --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -f "$log"' EXIT
if ! scripts/wait-ready.sh "$port" 120; then
  cat "$log" >&2
  exit 1
fi
"$venv/bin/st" --config-file tests/contract/schemathesis.toml run openapi.yaml \
  --url "http://127.0.0.1:$port" --checks all --max-examples "${1:-100}" --no-color
