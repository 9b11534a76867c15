# shellcheck shell=bash
# Sourced by the benchmark scripts: every figure is written with the CPU it was measured on.

# cpu_summary: e.g. "AMD EPYC (family 26, model 2), 2 cores, AVX-512 F/VNNI/BF16, no AMX": the
# model name, the family and model numbers (which tell Zen 3/4/5, or Sapphire from Emerald
# Rapids, apart where a virtual machine's name does not), the core count, and
# the instruction sets that change which kernels ONNX Runtime and libtorch run.
cpu_summary() {
  local flags isa=()
  flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
  if [[ "$flags" == *" avx512f "* ]]; then
    local parts=(F)
    [[ "$flags" == *" avx512_vnni "* ]] && parts+=(VNNI)
    [[ "$flags" == *" avx512_bf16 "* ]] && parts+=(BF16)
    isa+=("AVX-512 $(IFS=/; echo "${parts[*]}")")
  elif [[ "$flags" == *" avx2 "* ]]; then
    isa+=("AVX2 only")
  fi
  if [[ "$flags" == *" amx_tile "* ]]; then isa+=(AMX); else isa+=("no AMX"); fi
  printf '%s (family %s, model %s), %s cores, %s\n' \
    "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" \
    "$(lscpu | sed -n 's/^CPU family: *//p' | head -1)" \
    "$(lscpu | sed -n 's/^Model: *//p' | head -1)" "$(nproc)" "$(IFS=,; echo "${isa[*]}" | sed 's/,/, /g')"
}
