#!/usr/bin/env bash
# Installs Debian packages for the commands named, skipping those already on PATH: what CI's
# clean machine lacks for the image and monitoring checks (podman, runc, debootstrap, prometheus,
# promtool). Needs root and Debian's package registry.
# Usage: scripts/lib/debian-packages.sh COMMAND[=PACKAGE]...   (e.g. promtool=prometheus)
set -euo pipefail
missing=()
for spec in "$@"; do
  command="${spec%%=*}" package="${spec#*=}"
  command -v "$command" >/dev/null || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "debian-packages: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# With recommends: podman needs netavark, slirp4netns and fuse-overlayfs from them.
apt-get install -y -q "${missing[@]}" >/dev/null
