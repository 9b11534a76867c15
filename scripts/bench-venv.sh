#!/usr/bin/env bash
# Creates (once) the Python environment of the peers we benchmark against and the reference
# generators: Hugging Face transformers 4.57.x with tokenizers 0.22.2, from PyPI.
# Prints the venv's python path. Override the location with BERTQA_BENCH_VENV.
set -euo pipefail
venv="${BERTQA_BENCH_VENV:-$HOME/.cache/bertqa/benchvenv}"
stamp="transformers==4.57.6 tokenizers==0.22.2 numpy"
if [[ ! -f "$venv/.stamp" || "$(cat "$venv/.stamp")" != "$stamp" ]]; then
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet $stamp >&2
  echo "$stamp" >"$venv/.stamp"
fi
echo "$venv/bin/python"
