#!/usr/bin/env bash
# The page at / tested in a real browser: installs Debian's Chromium and playwright-core (from
# tests/browser/package-lock.json) when missing, builds bertqa, and runs tests/browser/page.test.mjs,
# which starts its own servers with the default model (or BERTQA_MODEL_DIR). Screenshots of each state are written to
# $BERTQA_SCREENSHOTS (default: $CARGO_TARGET_DIR/browser), not committed.
# Usage: scripts/browser-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/lib/debian-packages.sh chromium
(cd tests/browser && { [[ -d node_modules/playwright-core ]] || npm ci --no-audit --no-fund --loglevel=error; })
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bertqa/target}"
cargo build --quiet --bin bertqa
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/native/onnxruntime/libonnxruntime.so.1.31.1}"
export BERTQA_BIN="$CARGO_TARGET_DIR/debug/bertqa"
export BERTQA_MODEL_DIR="$(realpath "${BERTQA_MODEL_DIR:-models/minilm-l6-squad1}")"
export BERTQA_SQUAD_DEV="${BERTQA_SQUAD_DEV:-${BERTQA_SQUAD_DIR:-../shared/data/squad}/dev-v1.1.json.gz}"
export BERTQA_SCREENSHOTS="${BERTQA_SCREENSHOTS:-$CARGO_TARGET_DIR/browser}"
BERTQA_SQUAD_DEV="$(realpath "$BERTQA_SQUAD_DEV")" BERTQA_SCREENSHOTS="$(realpath -m "$BERTQA_SCREENSHOTS")" \
  npm --prefix tests/browser test
echo "browser-test: screenshots in $BERTQA_SCREENSHOTS"
