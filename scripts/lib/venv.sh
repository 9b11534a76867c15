# shellcheck shell=bash
# Sourced by the scripts that run Python tools from PyPI (validate-deploy, contract-test).

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
