#!/usr/bin/env bash
# Builds the image with podman, from the Dockerfile users build with `docker build` (podman reads
# the same file; --format docker keeps its HEALTHCHECK, which the OCI format drops):
#   cpu  -> bertqa:latest    cuda -> bertqa:cuda (CUDA runtime base; runs only on a GPU)
# The base images are the local stand-ins of scripts/image/bases.sh unless
# BERTQA_IMAGE_BASES=official (then rust:*-slim-bookworm and nvidia/cuda from their registries).
# Cargo's registry and target folders and the wheel cache are cache mounts that outlive the build,
# so a rebuild after a source change recompiles only what changed. With --prebuilt, the image
# takes this checkout's release binary (scripts/image/stage-prebuilt.sh) instead of compiling
# (CPU image only).
# Usage: scripts/image/build.sh [cpu|cuda] [--prebuilt]
set -euo pipefail
cd "$(dirname "$0")/../.."
variant=cpu
binaries=compile
for arg in "$@"; do
  case "$arg" in
    cpu | cuda) variant="$arg" ;;
    --prebuilt) binaries=prebuilt ;;
    *) echo "image-build: unknown argument '$arg' (known: cpu, cuda, --prebuilt)" >&2; exit 2 ;;
  esac
done
args=(--build-arg "VARIANT=$variant" --build-arg "BINARIES=$binaries"
  --build-arg "BERTQA_GIT_COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)")
if [[ "${BERTQA_IMAGE_BASES:-local}" == local ]]; then
  mapfile -t bases < <(scripts/image/bases.sh)
  args+=(--build-arg "BUILDER_IMAGE=${bases[0]}")
  [[ "$variant" == cuda ]] && args+=(--build-arg "RUNTIME_IMAGE=${bases[1]}")
elif [[ "$variant" == cuda ]]; then
  args+=(--build-arg "RUNTIME_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu24.04")
fi
if [[ "$binaries" == prebuilt ]]; then
  [[ "$variant" == cpu ]] || { echo "image-build: --prebuilt is for the CPU image" >&2; exit 2; }
  scripts/image/stage-prebuilt.sh
fi
tag=bertqa:latest
[[ "$variant" == cuda ]] && tag=bertqa:cuda
began=$SECONDS
podman build --format docker --isolation chroot "${args[@]}" --tag "$tag" . >&2
# Each build leaves its predecessor's layers untagged; the cache mounts keep what matters.
podman image prune --force >/dev/null
echo "image-build: $tag in $((SECONDS - began)) s, $(podman image inspect --format '{{.Size}}' "$tag" | numfmt --to=si)B" >&2
