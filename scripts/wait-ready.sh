#!/usr/bin/env bash
# Waits until a local bertqa (or peer) server answers GET /ready; fails with a message after
# SECONDS (default 120). Usage: scripts/wait-ready.sh PORT [SECONDS]
set -euo pipefail
port="${1:?usage: scripts/wait-ready.sh PORT [SECONDS]}"
deadline=$((SECONDS + ${2:-120}))
until curl -sf "http://127.0.0.1:$port/ready" >/dev/null; do
  if ((SECONDS >= deadline)); then
    echo "wait-ready: server on port $port never became ready" >&2
    exit 1
  fi
  sleep 0.5
done
