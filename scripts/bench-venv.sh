#!/usr/bin/env bash
# Creates (once) the Python environment of the peers we benchmark against and of the reference
# generators: Hugging Face transformers 4.57.x with tokenizers 0.22.2 from PyPI, and with
# --with-torch also torch 2.13 (CPU use of the CUDA build), accelerate, and FastAPI + uvicorn
# (the HTTP peer of the load benchmark), onnxruntime and onnx (the Python ONNX Runtime int8
# peer, bench/serve_ort.py).
# Prints the venv's python path. Override the location with BERTQA_BENCH_VENV.
set -euo pipefail
venv="${BERTQA_BENCH_VENV:-$HOME/.cache/bertqa/benchvenv}"
packages="transformers==4.57.6 tokenizers==0.22.2 numpy safetensors"
[[ "${1:-}" == "--with-torch" ]] && packages="$packages torch==2.13.0 accelerate fastapi==0.165.0 uvicorn==0.54.0 onnxruntime==1.31.1 onnx"
if [[ ! -f "$venv/.stamp" ]] || ! grep -qxF "$packages" "$venv/.stamp"; then
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet --find-links "$HOME/.cache/bertqa/wheels" $packages >&2
  echo "$packages" >>"$venv/.stamp"
fi
echo "$venv/bin/python"
