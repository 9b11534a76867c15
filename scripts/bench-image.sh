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
# shellcheck source=scripts/lib/load.sh
source scripts/lib/load.sh
load_setup
trap 'load_cleanup; podman rm -f bertqa-bench >/dev/null 2>&1 || true' EXIT
for ((round = 1; round <= rounds; round++)); do
  load_bare 18090 bare "$questions" "$levels"
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
    load "$port" "container-$network" "$questions" "$levels"
    podman rm -f bertqa-bench >/dev/null 2>&1
  done
done
echo "$LINES"
table="$(echo "$LINES" | python3 scripts/lib/load_table.py)"
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
