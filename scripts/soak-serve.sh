#!/usr/bin/env bash
# Soak: `bertqa serve` under an open-loop load of RATE requests/s (dev v1.1 questions) for
# SECONDS; every accepted request must be answered (429s are allowed: that is the overload
# answer), and the server's resident memory must stay flat. Rewrites the "soak" section of
# bench/RESULTS.md. Usage: scripts/soak-serve.sh MODEL_DIR RATE SECONDS
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:?usage: scripts/soak-serve.sh MODEL_DIR RATE SECONDS}"
rate="${2:?requests per second}"
seconds="${3:?duration in seconds}"
data="${BERTQA_SQUAD_DIR:-../shared/data/squad}/dev-v1.1.json.gz"
cargo build --quiet --release --bin bertqa
cargo bench --quiet --bench load --no-run 2>/dev/null
target/release/bertqa serve --model-dir "$model" --host 127.0.0.1 --port 18085 --log-format json >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
scripts/wait-ready.sh 18085
rss() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$server/status"; }
(while kill -0 $server 2>/dev/null; do rss; echo; sleep 10; done) >"/tmp/soak-rss.$$" &
sampler=$!
log="$(cargo bench --quiet --bench load -- soak http://127.0.0.1:18085/answer "$data" "$rate" "$seconds" 2>/dev/null)"
kill $sampler 2>/dev/null || true
echo "$log"
samples="$(tr '\n' ' ' <"/tmp/soak-rss.$$")"
rm -f "/tmp/soak-rss.$$"
echo "RSS MiB every 10 s: $samples"
final="$(echo "$log" | grep '^soak done')"
section="$(cat <<MD
<!-- soak:begin -->
## Soak (open-loop $rate requests/s for $seconds s, \`bertqa serve\` int8, default settings)

Command: \`scripts/soak-serve.sh $model $rate $seconds\` (2-core AMD EPYC dev machine, load client on
the same cores, training paused). Requests are sent on a fixed schedule whether or not earlier
ones were answered; 429 is the service refusing work it cannot queue, "failed" is anything else
(errors, timeouts, other codes).

Result: \`$final\`

Server RSS (MiB) every 10 s: $samples
<!-- soak:end -->
MD
)"
scripts/bench-section.py bench/RESULTS.md soak "$section"
