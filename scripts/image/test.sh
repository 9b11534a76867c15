#!/usr/bin/env bash
# Tests the built images as users run them (scripts/image/test_image.py): bertqa:latest, and
# bertqa:cuda's contents when that image exists. Build them first (make image, make image-cuda).
# Usage: scripts/image/test.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
dev="${BERTQA_SQUAD_DIR:-../shared/data/squad}/dev-v1.1.json.gz"
images=(bertqa:latest)
podman image exists bertqa:cuda && images+=(bertqa:cuda)
python3 scripts/image/test_image.py "${images[0]}" "$dev" "${images[@]:1}"
