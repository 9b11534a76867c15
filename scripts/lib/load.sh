# shellcheck shell=bash
# Sourced by the benchmark scripts that put HTTP load on `bertqa serve` (bench-image,
# bench-workers): the release server and the load client (benches/load.rs) built once, and one
# function to run the client, so that every configuration they compare meets the same load.

# load_setup: builds both and sets DATA (dev v1.1), CARGO_TARGET_DIR and ORT_DYLIB_PATH.
load_setup() {
  DATA="${BERTQA_SQUAD_DIR:-../shared/data/squad}/dev-v1.1.json.gz"
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bertqa/target}"
  export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/native/onnxruntime/libonnxruntime.so.1.31.1}"
  cargo build --quiet --release --bin bertqa
  cargo bench --quiet --bench load --no-run 2>/dev/null
}

# load PORT LABEL QUESTIONS LEVELS [PASSAGES]: the client's lines for /answer on
# 127.0.0.1:PORT, added to LINES (one per client count); PASSAGES > 1 sends `contexts`.
LINES=""
load() {
  LINES+="$(cargo bench --quiet --bench load -- "http://127.0.0.1:$1/answer" "$DATA" "$3" "$4" "$2" "${5:-1}" 2>/dev/null)"$'\n'
}

# load_bare PORT LABEL QUESTIONS LEVELS [SERVE_FLAG...]: the release `bertqa serve` (default
# model; $BERTQA_BIN instead when set, e.g. an older build for an A/B) with SERVE_FLAGs on 127.0.0.1:PORT, loaded as `load` does (with LOAD_PASSAGES
# passages per question when set), then stopped.
LOAD_SERVER=""
load_bare() {
  local port="$1" label="$2" questions="$3" levels="$4"
  shift 4
  "${BERTQA_BIN:-$CARGO_TARGET_DIR/release/bertqa}" serve --host 127.0.0.1 --port "$port" --log-format json \
    "$@" >/dev/null 2>&1 &
  LOAD_SERVER=$!
  scripts/wait-ready.sh "$port"
  load "$port" "$label" "$questions" "$levels" "${LOAD_PASSAGES:-1}"
  kill -TERM "$LOAD_SERVER" && wait "$LOAD_SERVER" || true
  LOAD_SERVER=""
}

# load_cleanup: stops a server load_bare left running (for an EXIT trap).
load_cleanup() {
  if [[ -n "$LOAD_SERVER" ]]; then kill "$LOAD_SERVER" 2>/dev/null || true; fi
}
