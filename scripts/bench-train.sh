#!/usr/bin/env bash
# Training speed, finetune (fp32, and bf16 where the CPU has bf16 arithmetic) vs the Hugging
# Face Trainer (there bf16 autocast, padded to 384 as run_qa.py does, and with dynamic padding;
# everywhere fp32 with dynamic padding, the peer of `--precision auto` on a CPU without bf16; on
# another vendor's AVX-512 CPU also with MKL's AVX-512 kernels, as finetune runs them), same
# model, same first QUESTIONS train questions (~1 window each), batch 16, side by side in one
# run; rewrites the "Training" section of bench/RESULTS.md.
# Usage: scripts/bench-train.sh [SQUAD_DIR] [QUESTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
squad="${1:-../shared/data/squad}"
questions="${2:-2000}"
python="$(scripts/bench-venv.sh --with-torch)"
model=native/models/all-MiniLM-L6-v2
# shellcheck source=scripts/lib/cpu.sh
source scripts/lib/cpu.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --quiet --release --features train --bin finetune
finetune() { # OUT, then flags of this run
  local out="$1"; shift
  "$CARGO_TARGET_DIR/release/finetune" --model "$model" --train "$squad/train-v1.1-rebuilt.json.gz" \
    --dev "$squad/dev-v1.1.json.gz" --dev-limit 10 --train-limit "$questions" --batch-size 16 \
    --out "$out" --quiet "$@"
}
ours() {
  local out; out="$(mktemp -d)"
  finetune "$out" --epochs 1 --precision "$1" >"$out/summary.json" 2>/dev/null
  python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print('%d windows, %.1f s, %.2f windows/s' % (s['data']['windows'], s['train_seconds'], s['windows_per_second']))" "$out/summary.json"
  rm -rf "$out"
}
# One step with `--precision auto`: its choice on this CPU (the summary's `precision`), and
# whether finetune lets MKL run its AVX-512 kernels here (it says so on stderr;
# src/train/mkl_paths.rs), so the Trainer below gets the same kernels exactly then.
probe="$(mktemp -d)"
finetune "$probe" --max-steps 1 --precision auto >"$probe/summary.json" 2>"$probe/stderr"
auto="$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['precision'])" "$probe/summary.json")"
mkl_avx512=0; grep -q "MKL's AVX-512 kernels" "$probe/stderr" && mkl_avx512=1
rm -rf "$probe"
rate() { sed -n 's/.* \([0-9.]*\) windows\/s.*/\1/p' <<<"$1"; }
ratio() { python3 -c "import sys; print('%.2fx' % (float(sys.argv[1]) / float(sys.argv[2])))" "$(rate "$1")" "$(rate "$2")"; }
if [ "$auto" = bf16 ]; then on_bf16=" (the default on this CPU)"; on_fp32=""
else on_bf16=""; on_fp32=" (the default on this CPU)"; fi
hf() { # PADDING PRECISION: the Trainer's line without its label
  "$python" bench/train_hf.py "$model" "$squad/train-v1.1-rebuilt.json.gz" "$questions" "$@" \
    2>/dev/null | sed -n 's/^hf-train [a-z_]* [a-z0-9]*: //p'
}
# mmap_max=0 + a huge trim_threshold: glibc never hands freed memory back to the kernel.
kept=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736
# bf16 rows run only where the CPU has bf16 arithmetic (AVX-512 BF16 or AMX), whichever
# precision `auto` then picks: elsewhere both sides would emulate it, hours for a row nobody
# runs that way.
if grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then
  bf16="$(ours bf16)"
  hf_dyn="$(hf dynamic bf16)"
  hf_pad="$(hf max_length bf16)"
  hf_kept="$(GLIBC_TUNABLES=$kept hf dynamic bf16)"
  bf16_ratio="bf16 $(ratio "$bf16" "$hf_kept"),
fp32 "
else
  bf16="not run: no bf16 arithmetic on this CPU"
  hf_dyn="$bf16"; hf_pad="$bf16"; hf_kept="$bf16"
  bf16_ratio="bf16 not run, fp32 "
fi
fp32="$(ours fp32)"
hf_kept_fp32="$(GLIBC_TUNABLES=$kept hf dynamic fp32)"
# Where finetune runs MKL's AVX-512 kernels, the Trainer gets the same answer to MKL's vendor
# check through LD_PRELOAD, so that fp32 is also compared kernel for kernel.
hf_mkl_row=""; mkl_ratio=""
if [ "$mkl_avx512" = 1 ]; then
  shim="$(mktemp -d)"
  printf 'int mkl_serv_intel_cpu_true(void) { return 1; }\n' | gcc -x c -shared -fPIC -o "$shim/mkl.so" -
  hf_mkl="$(LD_PRELOAD="$shim/mkl.so" GLIBC_TUNABLES=$kept hf dynamic fp32)"
  rm -rf "$shim"
  hf_mkl_row=$'\n'"| the same, MKL's AVX-512 kernels as \`finetune\` runs them (\`LD_PRELOAD\`) | $hf_mkl |"
  mkl_ratio=" ($(ratio "$fp32" "$hf_mkl") against the Trainer given MKL's AVX-512 kernels too)"
fi
section="$(cat <<MD
<!-- train:begin -->
## Training (all-MiniLM-L6-v2 + QA head, first $questions SQuAD v1.1 train questions, batch 16)

Measured $(date -u +%Y-%m-%d) on $(cpu_summary) by \`scripts/bench-train.sh\`.
Training steps only (data preparation and evaluation excluded), one epoch.

| implementation | result |
| --- | --- |
| bertqa \`finetune\`, bf16, length-bucketed batches$on_bf16 | $bf16 |
| bertqa \`finetune\`, fp32, length-bucketed batches$on_fp32 | $fp32 |
| HF Trainer, bf16 autocast, padded to 384 (run_qa.py default) | $hf_pad |
| HF Trainer, bf16 autocast, dynamic padding + group_by_length | $hf_dyn |
| the same, glibc malloc keeping freed memory (\`GLIBC_TUNABLES\`) | $hf_kept |
| HF Trainer, fp32, dynamic padding + group_by_length, glibc keeping freed memory | $hf_kept_fp32 |$hf_mkl_row

Against the best-configured Trainer of the same precision: $bf16_ratio$(ratio "$fp32" "$hf_kept_fp32")$mkl_ratio.
<!-- train:end -->
MD
)"
scripts/bench-section.py bench/RESULTS.md train "$section"
echo "$section"
