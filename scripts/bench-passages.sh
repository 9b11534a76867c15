#!/usr/bin/env bash
# Many passages per question: HTTP /answer q/s and latency of `bertqa serve` (default model,
# release build) when each question brings N `contexts` (its own dev paragraph among N - 1
# distractors, as `bertqa evaluate-passages` draws them), for each N, same load client
# (benches/load.rs), taking turns ROUNDS times in one run. Rewrites the "passages" section of
# bench/RESULTS.md. Stop anything else using the cores first.
# Usage: scripts/bench-passages.sh [COUNTS] [QUESTIONS] [LEVELS] [ROUNDS]
#   (default "1 5 20", 200, 1,8, 2)
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a counts <<<"${1:-1 5 20}"
questions="${2:-200}"
levels="${3:-1,8}"
rounds="${4:-2}"
# shellcheck source=scripts/lib/load.sh
source scripts/lib/load.sh
load_setup
trap load_cleanup EXIT
for ((round = 1; round <= rounds; round++)); do
  for n in "${counts[@]}"; do
    LOAD_PASSAGES="$n" load_bare 18092 "passages-$n" "$questions" "$levels"
  done
done
echo "$LINES"
table="$(echo "$LINES" | python3 scripts/lib/load_table.py)"
# shellcheck source=scripts/lib/cpu.sh
source scripts/lib/cpu.sh
section="$(cat <<MD
<!-- passages:begin -->
## Many passages per question (\`contexts\`)

\`bertqa serve\` with the default model and settings, as the release binary; the same load client
(\`benches/load.rs\`, on the same cores) sends the first $questions dev v1.1 questions, each with N
passages (its own paragraph among N − 1 distractors: half from its article, the rest from
others); q/s counts questions, so passages/s is N times it. The counts take turns $rounds times.
CPU: $(cpu_summary), measured $(date -u +%Y-%m-%d).
Command: \`scripts/bench-passages.sh "${counts[*]}" $questions $levels $rounds\`.

$table
<!-- passages:end -->
MD
)"
scripts/bench-section.py bench/RESULTS.md passages "$section"
