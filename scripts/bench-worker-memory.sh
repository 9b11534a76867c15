#!/usr/bin/env bash
# Resident memory of `bertqa serve` (default model, release build, or $BERTQA_BIN) per number
# of inference workers (no lone-batch session): when ready (every worker warmed with the largest batch) and after the
# first QUESTIONS dev v1.1 questions at 8 clients. Prints one markdown row per worker count.
# Usage: scripts/bench-worker-memory.sh [WORKERS] [QUESTIONS]   (default "1 2 4", 500)
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a counts <<<"${1:-1 2 4}"
questions="${2:-500}"
# shellcheck source=scripts/lib/load.sh
source scripts/lib/load.sh
load_setup
trap load_cleanup EXIT
rss_mib() { awk '/^VmRSS:/ { print int($2 / 1024) }' "/proc/$1/status"; }
echo "| workers (1 thread each) | ready MiB | after $questions questions, 8 clients, MiB | q/s |"
echo "| --- | --- | --- | --- |"
for workers in "${counts[@]}"; do
  "${BERTQA_BIN:-$CARGO_TARGET_DIR/release/bertqa}" serve --host 127.0.0.1 --port 18093 \
    --log-format json --workers "$workers" --threads 1 --lone-batch-threads 0 >/dev/null 2>&1 &
  LOAD_SERVER=$!
  scripts/wait-ready.sh 18093
  ready="$(rss_mib "$LOAD_SERVER")"
  LINES=""
  load 18093 "workers-$workers" "$questions" 8
  qps="$(sed -n 's/.*: \([0-9.]*\) q\/s.*/\1/p' <<<"$LINES" | head -1)"
  echo "| $workers | $ready | $(rss_mib "$LOAD_SERVER") | $qps |"
  kill -TERM "$LOAD_SERVER" && wait "$LOAD_SERVER" || true
  LOAD_SERVER=""
done
