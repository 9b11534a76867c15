#!/usr/bin/env bash
# Inference workers: HTTP /answer q/s and latency of `bertqa serve` (default model, release
# build) for each WORKERSxTHREADS[+LONE][/BATCH] configuration (LONE: --lone-batch-threads,
# 0 when not given; BATCH: --max-batch-size, the default when not given), same load client
# (benches/load.rs), same dev questions, taking turns ROUNDS times in one run. Rewrites the "workers" section of
# bench/RESULTS.md. Stop anything else using the cores first.
# Usage: scripts/bench-workers.sh [CONFIGS] [QUESTIONS] [LEVELS] [ROUNDS]
#   (default "1x2 2x1", 1000, 1,8,32,64, 2)
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a configs <<<"${1:-1x2 2x1}"
questions="${2:-1000}"
levels="${3:-1,8,32,64}"
rounds="${4:-2}"
# shellcheck source=scripts/lib/load.sh
source scripts/lib/load.sh
load_setup
trap load_cleanup EXIT
for ((round = 1; round <= rounds; round++)); do
  for config in "${configs[@]}"; do
    flags=()
    if [[ "$config" == */* ]]; then flags+=(--max-batch-size "${config#*/}"); fi
    rest="${config%/*}"
    shape="${rest%+*}"
    lone=0
    if [[ "$rest" == *+* ]]; then lone="${rest#*+}"; fi
    load_bare 18091 "workers-$config" "$questions" "$levels" \
      --workers "${shape%x*}" --threads "${shape#*x}" --lone-batch-threads "$lone" "${flags[@]}"
  done
done
echo "$LINES"
table="$(echo "$LINES" | python3 scripts/lib/load_table.py)"
# shellcheck source=scripts/lib/cpu.sh
source scripts/lib/cpu.sh
section="$(cat <<MD
<!-- workers:begin -->
## Inference workers (\`--workers W --threads T --lone-batch-threads L --max-batch-size B\`, written WxT+L/B; no +L: 0, no /B: the default)

\`bertqa serve\` with the default model and settings but for the workers, as the release binary;
the same load client (\`benches/load.rs\`, on the same cores) sends the first $questions dev v1.1
questions at each client count; the configurations take turns $rounds times in one run.
CPU: $(cpu_summary), measured $(date -u +%Y-%m-%d).
Command: \`scripts/bench-workers.sh "${configs[*]}" $questions $levels $rounds\`.

$table
<!-- workers:end -->
MD
)"
scripts/bench-section.py bench/RESULTS.md workers "$section"
