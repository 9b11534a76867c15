#!/usr/bin/env bash
# Puts this checkout's release binary and ONNX Runtime into dist/image/ (bin/bertqa, lib/), which
# the Dockerfile's BINARIES=prebuilt stage copies instead of compiling in the image: for CI, which
# builds the same binary anyway. Only valid where the host is Debian bookworm (the runtime image's
# C library comes from the bookworm builder image); refuses elsewhere.
# Usage: scripts/image/stage-prebuilt.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx 'VERSION_CODENAME=bookworm' /etc/os-release ||
  { echo "stage-prebuilt: the host is not Debian bookworm; build in the image instead" >&2; exit 1; }
scripts/setup-native.sh --no-libtorch --no-pretrained >/dev/null
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bertqa/target}"
cargo build --quiet --release --locked --bin bertqa
rm -rf dist/image && mkdir -p dist/image/bin
cp "$CARGO_TARGET_DIR/release/bertqa" dist/image/bin/
cp -r native/onnxruntime dist/image/lib
echo "stage-prebuilt: dist/image ready" >&2
