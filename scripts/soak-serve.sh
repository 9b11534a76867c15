#!/usr/bin/env bash
# Soak: `bertqa serve` under an open-loop load of RATE requests/s (dev v1.1 questions) for
# SECONDS; every accepted request must be answered (429s are allowed: that is the overload
# answer), and the server's resident memory must stay flat. RSS is sampled every second;
# the summary gives the peak, the RSS after the first minute and after the last. With
# SECTION=1 it rewrites the "soak" section of bench/RESULTS.md.
# Usage: [SECTION=1] scripts/soak-serve.sh MODEL_DIR RATE SECONDS [SERVE_FLAG...]
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:?usage: scripts/soak-serve.sh MODEL_DIR RATE SECONDS [SERVE_FLAG...]}"
rate="${2:?requests per second}"
seconds="${3:?duration in seconds}"
shift 3
source scripts/lib/cpu.sh
source scripts/lib/load.sh
load_setup
"$CARGO_TARGET_DIR/release/bertqa" serve --model-dir "$model" --host 127.0.0.1 --port 18085 \
  --log-format json "$@" >/dev/null 2>&1 &
server=$!
samples="$(mktemp)"
trap 'kill $server 2>/dev/null || true; rm -f "$samples"' EXIT
scripts/wait-ready.sh 18085
rss() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$server/status"; }
ready_rss="$(rss)"
(while kill -0 $server 2>/dev/null; do rss; echo; sleep 1; done) >"$samples" &
sampler=$!
log="$(cargo bench --quiet --bench load -- soak http://127.0.0.1:18085/answer "$DATA" "$rate" "$seconds" 2>/dev/null)"
kill $sampler 2>/dev/null || true
peak="$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$server/status")"
echo "$log"
final="$(echo "$log" | grep '^soak done')"
# RSS at the end of each minute, after the first minute (warm-up) and at the end.
minutes="$(awk 'NR % 60 == 0 {printf "%s ", $1}' "$samples")"
after_warmup="$(awk 'NR == 60 {print $1}' "$samples")"
last="$(grep -v '^$' "$samples" | tail -1)"
summary="ready ${ready_rss} MiB; peak ${peak} MiB; after 60 s ${after_warmup} MiB; at the end ${last} MiB"
echo "RSS: $summary"
echo "RSS MiB at the end of each minute: $minutes"
[[ ${SECTION:-0} == 1 ]] || exit 0
section="$(cat <<MD
<!-- soak:begin -->
## Soak (open-loop $rate requests/s for $seconds s, \`bertqa serve\` int8)

Command: \`SECTION=1 scripts/soak-serve.sh $model $rate $seconds $*\` ($(cpu_summary), load
client on the same cores, training paused). Requests are sent on a fixed schedule whether or
not earlier ones were answered; 429 is the service refusing work it cannot queue, "failed" is
anything else (errors, timeouts, other codes). RSS is sampled every second.

Result: \`$final\`

RSS: $summary.

RSS (MiB) at the end of each minute: $minutes
<!-- soak:end -->
MD
)"
scripts/bench-section.py bench/RESULTS.md soak "$section"
