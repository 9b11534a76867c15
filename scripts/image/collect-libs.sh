#!/bin/sh
# Copies into ROOT every shared library that the given ELF files load (as ldd resolves them,
# dynamic loader included), each at the path it has here, so that a FROM scratch image holds
# exactly what its programs need. Runs in the image builder (POSIX sh: no bash there is assumed).
# Fails on a library ldd cannot find. Usage: collect-libs.sh ROOT ELF...
set -eu
root="$1"
shift
for elf in "$@"; do
  deps="$(ldd "$elf")"
  if echo "$deps" | grep -q 'not found'; then
    echo "collect-libs: $elf needs a library this builder lacks:" >&2
    echo "$deps" | grep 'not found' >&2
    exit 1
  fi
  # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
  echo "$deps" | sed -n -e 's/.*=> \(\/[^ ]*\) .*/\1/p' -e 's/^[[:space:]]*\(\/[^ ]*\) .*/\1/p'
done | sort -u | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
  echo "collect-libs: $lib" >&2
done
