#!/usr/bin/env bash
# Makes the Dockerfile's base images offline, from Debian packages, under the names its ARGs
# give (so `podman build --pull=never` finds them): no registry is reachable here.
#
#   RUNTIME_IMAGE (debian:bookworm-slim)  mmdebstrap --variant=essential bookworm
#   BUILD_IMAGE (node:20-bookworm-slim)   the same plus gcc, libc6-dev, libnl, CA certificates,
#                                         and this machine's node + npm under /usr/local, where
#                                         the public node image has them
#
# The rootfs tars are cached in $PODPLEX_IMAGE_CACHE (default /var/cache/podplex/images),
# keyed by their recipe; an image already imported from the same recipe is kept.
# Run with scripts/podman-env.sh sourced (scripts/image.sh does).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${PODPLEX_IMAGE_CACHE:-/var/cache/podplex/images}
mkdir -p "$cache"

arg() { sed -nE "s/^ARG $1=(.*)$/\1/p" "$root/Dockerfile"; }
runtime_image=$(arg RUNTIME_IMAGE)
build_image=$(arg BUILD_IMAGE)
[ -n "$runtime_image" ] && [ -n "$build_image" ] || {
  echo "base-images: no BUILD_IMAGE/RUNTIME_IMAGE ARG in Dockerfile" >&2
  exit 1
}

trim=(--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*')
build_pkgs=gcc,libc6-dev,libnl-3-200,libnl-route-3-200,ca-certificates,libstdc++6
# What the runtime stage needs beyond the artifact: the firewall tools ipMasq uses (thick mode).
runtime_pkgs=iptables,nftables
node_bin=$(readlink -f "$(command -v node)")
npm_dir=$(npm root -g)/npm
recipe() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }
runtime_key=$(recipe essential "${trim[@]}" "$runtime_pkgs")
build_key=$(recipe essential "${trim[@]}" "$build_pkgs" "$("$node_bin" --version)" \
  "$(npm --version)")

# mmdebstrap hooks that add node and npm at /usr/local, as in the public node images.
node_hooks=(
  --customize-hook='mkdir -p "$1/usr/local/bin" "$1/usr/local/lib/node_modules"'
  --customize-hook="cp '$node_bin' \"\$1/usr/local/bin/node\""
  --customize-hook="cp -a '$npm_dir' \"\$1/usr/local/lib/node_modules/npm\""
  --customize-hook='ln -s ../lib/node_modules/npm/bin/npm-cli.js "$1/usr/local/bin/npm"'
  --customize-hook='ln -s ../lib/node_modules/npm/bin/npx-cli.js "$1/usr/local/bin/npx"'
)

# make_tar KEY [mmdebstrap args...]: the cached tar's path, made when missing.
make_tar() {
  local key=$1 out
  shift
  out=$cache/$key.tar
  if [ ! -s "$out" ]; then
    # The target's extension tells mmdebstrap to write a tar.
    mmdebstrap --quiet --variant=essential "$@" bookworm "$cache/.$key.tmp.tar" >&2
    mv "$cache/.$key.tmp.tar" "$out"
  fi
  echo "$out"
}

import() {
  local name=$1 key=$2 tar=$3
  if [ "$(podman image inspect --format '{{index .Labels "org.podplex.recipe"}}' "$name" \
    2>/dev/null)" = "$key" ]; then
    return 0
  fi
  podman import --quiet --change "LABEL org.podplex.recipe=$key" --change 'CMD ["/bin/sh"]' \
    "$tar" "$name" >/dev/null
}

command -v mmdebstrap >/dev/null || { echo "base-images: mmdebstrap missing (scripts/setup.sh)" >&2; exit 1; }
# The two debootstraps run side by side (mostly waiting on downloads and dpkg).
make_tar "runtime-$runtime_key" "${trim[@]}" --include="$runtime_pkgs" > "$cache/.runtime.path" &
runtime_job=$!
build_tar=$(make_tar "build-$build_key" "${trim[@]}" --include="$build_pkgs" "${node_hooks[@]}")
wait "$runtime_job"
import "$runtime_image" "$runtime_key" "$(cat "$cache/.runtime.path")"
import "$build_image" "$build_key" "$build_tar"
rm -f "$cache/.runtime.path"
