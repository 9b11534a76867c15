#!/usr/bin/env bash
# Makes local stand-ins for the Dockerfile's public base images on a machine that has podman
# but no container registry (CI here): Debian's own packages build them, nothing is pulled.
#   localhost/bertqa-base/debian:bookworm-slim    debootstrap --variant=minbase bookworm; stands
#                                                 in for the CUDA runtime base in the CUDA build
#   localhost/bertqa-base/rust:<V>-slim-bookworm  the same plus gcc, libc6-dev, python3-pip and
#                                                 ca-certificates (what rust:<V>-slim-bookworm
#                                                 and the Dockerfile's apt-get step hold) and this
#                                                 machine's rustup toolchain <V>, which must be the
#                                                 version the Dockerfile's BUILDER_IMAGE names
# Idempotent: an image whose stamp label matches is kept; the debootstrap roots are cached in
# $BERTQA_IMAGE_CACHE (default ~/.cache/bertqa/image), outside the clone. Needs root, podman and
# debootstrap (scripts/lib/debian-packages.sh podman runc debootstrap). Prints the two image names, builder first.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache="${BERTQA_IMAGE_CACHE:-$HOME/.cache/bertqa/image}"
mirror="${BERTQA_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
log() { echo "image-bases: $*" >&2; }

rust_version="$(sed -n 's/^ARG BUILDER_IMAGE=rust:\([0-9.]*\)-slim-bookworm$/\1/p' Dockerfile)"
[[ -n "$rust_version" ]] || { log "Dockerfile has no 'ARG BUILDER_IMAGE=rust:<V>-slim-bookworm' line"; exit 1; }
toolchain="$(rustc --print sysroot)"
have="$(rustc --version | cut -d' ' -f2)"
[[ "$have" == "$rust_version".* || "$have" == "$rust_version" ]] ||
  { log "this machine's rustc is $have, the Dockerfile builds with $rust_version"; exit 1; }

runtime_image=localhost/bertqa-base/debian:bookworm-slim
builder_image="localhost/bertqa-base/rust:$rust_version-slim-bookworm"
builder_packages=gcc,libc6-dev,python3,python3-pip,ca-certificates

# fresh IMAGE STAMP: true when IMAGE exists and was made with STAMP
fresh() {
  [[ "$(podman image inspect --format '{{index .Labels "bertqa.stamp"}}' "$1" 2>/dev/null)" == "$2" ]]
}

# rootfs NAME [INCLUDE]: a cached debootstrap minbase root with the INCLUDE packages
rootfs() {
  local dir="$cache/$1" stamp="bookworm minbase ${2:-}"
  if [[ ! -f "$dir/.stamp" || "$(cat "$dir/.stamp")" != "$stamp" ]]; then
    log "debootstrap $1 (${2:-minbase})"
    rm -rf "$dir" "$dir.tmp" && mkdir -p "$cache"
    debootstrap --variant=minbase ${2:+--include="$2"} bookworm "$dir.tmp" "$mirror" >&2
    rm -rf "$dir.tmp"/var/cache/apt/archives/*.deb "$dir.tmp"/var/lib/apt/lists/*
    mv "$dir.tmp" "$dir"
    echo "$stamp" >"$dir/.stamp"
  fi
  echo "$dir"
}

# import DIR IMAGE STAMP [CHANGE...]: DIR (less its stamp) as IMAGE, labelled with STAMP
import() {
  local dir="$1" image="$2" stamp="$3" changes=()
  shift 3
  for c in "$@" "LABEL bertqa.stamp=\"$stamp\""; do changes+=(--change "$c"); done
  tar -C "$dir" --exclude=./.stamp -c . | podman import "${changes[@]}" - "$image" >/dev/null
  log "$image ready"
}

# trust_host_cas ROOT: the certificate authorities this machine trusts beyond Debian's own (a
# TLS-inspecting proxy in front of the package registries, say) become local CAs of ROOT, the
# Debian way (/usr/local/share/ca-certificates + update-ca-certificates), so that pip and cargo in
# the builder reach the same registries the host does.
trust_host_cas() {
  local root="$1"
  python3 - /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt" \
    "$root/usr/local/share/ca-certificates" <<'PY'
import os, re, sys
host, image, dest = sys.argv[1:]
pem = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
known = set(pem.findall(open(image).read()))
extra = [c for c in pem.findall(open(host).read()) if c not in known]
os.makedirs(dest, exist_ok=True)
for i, cert in enumerate(extra):
    with open(os.path.join(dest, "host-%d.crt" % i), "w") as f:
        f.write(cert + "\n")
print("image-bases: %d certificate authorities of this machine added" % len(extra), file=sys.stderr)
PY
  chroot "$root" update-ca-certificates >/dev/null
}

stamp="runtime bookworm minbase"
fresh "$runtime_image" "$stamp" ||
  import "$(rootfs runtime)" "$runtime_image" "$stamp" 'CMD ["bash"]'

stamp="builder bookworm $builder_packages rust $have host-cas $(sha256sum /etc/ssl/certs/ca-certificates.crt | cut -c1-16)"
if ! fresh "$builder_image" "$stamp"; then
  root="$(rootfs builder "$builder_packages")"
  # The toolchain (not its docs) at the official image's paths: cargo and rustc on PATH
  # through /usr/local/cargo/bin, as in rust:<V>-slim-bookworm.
  rm -rf "$root/usr/local/rustup" "$root/usr/local/cargo"
  mkdir -p "$root/usr/local/rustup/toolchain" "$root/usr/local/cargo/bin"
  cp -a "$toolchain"/{bin,lib,libexec} "$root/usr/local/rustup/toolchain/"
  for tool in "$toolchain"/bin/*; do
    ln -s "../../rustup/toolchain/bin/${tool##*/}" "$root/usr/local/cargo/bin/${tool##*/}"
  done
  trust_host_cas "$root"
  import "$root" "$builder_image" "$stamp" \
    'ENV CARGO_HOME=/usr/local/cargo' 'ENV RUSTUP_HOME=/usr/local/rustup' \
    'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'CMD ["bash"]'
fi
echo "$builder_image"
echo "$runtime_image"
