#!/usr/bin/env bash
# Real monitoring against the built image (make image first): `promtool check config` on the
# repository's scrape config, then Debian's Prometheus scraping a bertqa container with it and
# the Grafana dashboard's queries run through Prometheus (scripts/deploy/test_monitoring.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/lib/debian-packages.sh prometheus promtool=prometheus
promtool check config deploy/prometheus/prometheus.yml >&2
# shellcheck source=scripts/lib/venv.sh
source scripts/lib/venv.sh
venv="$(ensure_deploy_venv)"
"$venv/bin/python" scripts/deploy/test_monitoring.py bertqa:latest \
  "${BERTQA_SQUAD_DIR:-../shared/data/squad}/dev-v1.1.json.gz"
