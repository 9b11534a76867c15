#!/usr/bin/env bash
# The container's cost: HTTP /answer q/s and latency of `bertqa serve` as a bare release binary
# and as the bertqa:latest container (podman, hardened flags), its port published through
# podman's bridge network or on the host network, same load client (benches/load.rs), same dev
# questions, taking turns ROUNDS times in one run. Rewrites the "image" section of
# bench/RESULTS.md. Build the image first.
# Usage: scripts/bench-image.sh [QUESTIONS] [LEVELS] [ROUNDS]   (default 2000, 1,32, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
questions="${1:-2000}"
levels="${2:-1,32}"
rounds="${3:-3}"
data="${BERTQA_SQUAD_DIR:-../shared/data/squad}/dev-v1.1.json.gz"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bertqa/target}"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/native/onnxruntime/libonnxruntime.so.1.31.1}"
cargo build --quiet --release --bin bertqa
cargo bench --quiet --bench load --no-run 2>/dev/null
server=
trap '[[ -n $server ]] && kill "$server" 2>/dev/null; podman rm -f bertqa-bench >/dev/null 2>&1 || true' EXIT
load() { # PORT LABEL
  cargo bench --quiet --bench load -- "http://127.0.0.1:$1/answer" "$data" "$questions" "$levels" "$2" 2>/dev/null
}
lines=""
for ((round = 1; round <= rounds; round++)); do
  "$CARGO_TARGET_DIR/release/bertqa" serve --host 127.0.0.1 --port 18090 --log-format json >/dev/null 2>&1 &
  server=$!
  scripts/wait-ready.sh 18090
  lines+="$(load 18090 bare)"$'\n'
  kill -TERM "$server" && wait "$server" || true
  server=
  for network in bridge host; do
    port="$(python3 - "$network" <<'PY'
import sys
sys.path.insert(0, "scripts/image")
import container
box = container.Container("bertqa:latest", "bertqa-bench", container.HARDENED,
                          host_network=sys.argv[1] == "host")
box.wait_ready()
print(box.port)
PY
)"
    lines+="$(load "$port" "container-$network")"$'\n'
    podman rm -f bertqa-bench >/dev/null 2>&1
  done
done
echo "$lines"
table="$(echo "$lines" | python3 -c '
import re, sys, statistics
rows = {}
for line in sys.stdin:
    m = re.match(r"(\S+) c=(\d+): ([\d.]+) q/s p50=([\d.]+) p95=([\d.]+) p99=([\d.]+) ms", line)
    if m:
        rows.setdefault(int(m[2]), {}).setdefault(m[1], []).append([float(x) for x in m.groups()[2:]])
print("| clients | bare q/s (each round) | container, bridge | container, host network | bridge / bare | host network / bare | p50 ms bare / bridge / host |")
print("| --- | --- | --- | --- | --- | --- | --- |")
mean = lambda runs, i: statistics.mean(run[i] for run in runs)
each = lambda runs: ", ".join("%.1f" % run[0] for run in runs)
for c, r in sorted(rows.items()):
    bare, bridge, host = r["bare"], r["container-bridge"], r["container-host"]
    print("| %d | %s | %s | %s | %.3f | %.3f | %.1f / %.1f / %.1f |" % (c, each(bare), each(bridge), each(host),
        mean(bridge, 0) / mean(bare, 0), mean(host, 0) / mean(bare, 0), mean(bare, 1), mean(bridge, 1), mean(host, 1)))
')"
# shellcheck source=scripts/lib/cpu.sh
source scripts/lib/cpu.sh
cpu="$(cpu_summary)"
section="$(cat <<MD
<!-- image:begin -->
## The container's cost (bertqa:latest under podman against the bare binary)

\`bertqa serve\` with the default model and settings, once as the release binary and once as the
\`bertqa:latest\` image (podman 4.3 with runc, \`--read-only --cap-drop ALL --user 10001\`), its port
published on loopback through podman's bridge network (netavark, NAT) or the server on the host
network, taking turns $rounds times in one run; the same load client
(\`benches/load.rs\`) sends the first $questions dev v1.1 questions. CPU: $cpu, measured $(date -u +%Y-%m-%d).
Command: \`scripts/bench-image.sh $questions $levels $rounds\`.

$table
<!-- image:end -->
MD
)"
scripts/bench-section.py bench/RESULTS.md image "$section"
