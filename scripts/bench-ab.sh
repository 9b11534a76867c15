#!/usr/bin/env bash
# A/B of `bertqa serve` builds under the same HTTP load: an older binary (BEFORE) against the
# current release build, alternating round by round so that drift on a noisy host hits both,
# with the default model and settings. Prints the load client's table (scripts/lib/load_table.py).
# Stop anything else using the cores first.
# Usage: scripts/bench-ab.sh BEFORE_BINARY [QUESTIONS] [LEVELS] [ROUNDS]   (1000, 1,8,32,64, 2)
set -euo pipefail
cd "$(dirname "$0")/.."
before="${1:?usage: scripts/bench-ab.sh BEFORE_BINARY [QUESTIONS] [LEVELS] [ROUNDS]}"
questions="${2:-1000}" levels="${3:-1,8,32,64}" rounds="${4:-2}"
# shellcheck source=scripts/lib/load.sh
source scripts/lib/load.sh
load_setup
trap load_cleanup EXIT
after="$PWD/target-after-$$"
cp "$CARGO_TARGET_DIR/release/bertqa" "$after"
trap 'load_cleanup; rm -f "$after"' EXIT
for _ in $(seq "$rounds"); do
  BERTQA_BIN="$before" load_bare 18097 before "$questions" "$levels"
  BERTQA_BIN="$after" load_bare 18097 after "$questions" "$levels"
done
# shellcheck source=scripts/lib/cpu.sh
source scripts/lib/cpu.sh
echo "CPU: $(cpu_summary); $questions dev questions; before: $before"
echo "$LINES" | python3 scripts/lib/load_table.py
