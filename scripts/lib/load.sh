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

# load PORT LABEL QUESTIONS LEVELS: the client's lines for /answer on 127.0.0.1:PORT.
load() {
  cargo bench --quiet --bench load -- "http://127.0.0.1:$1/answer" "$DATA" "$3" "$4" "$2" 2>/dev/null
}
