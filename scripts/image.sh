#!/usr/bin/env bash
# Builds the DaemonSet image (Dockerfile) offline with podman: the base images from Debian
# packages (scripts/base-images.sh), then `podman build --pull=never`. The build stage takes
# Deno and the npm packages from the npm registry (the host's network; its npm and Deno
# caches are mounted, so a warm machine downloads nothing). Prints the image id.
#
#   bash scripts/image.sh [TAG]      (default localhost/podplex:latest)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-localhost/podplex:latest}
# shellcheck source=scripts/podman-env.sh
. "$root/scripts/podman-env.sh"
bash "$root/scripts/base-images.sh"
npm_cache=$(npm config get cache)
deno_cache=${DENO_DIR:-$HOME/.cache/deno}
mkdir -p "$npm_cache" "$deno_cache"
podman build --pull=never --network=host --quiet \
  -v "$npm_cache:/root/.npm" -v "$deno_cache:/root/.cache/deno" \
  -t "$tag" "$root" >/dev/null
# Untagged stage images of earlier builds would pile up (each holds a copy of the payload).
podman image prune --force >/dev/null
podman image inspect --format '{{.Id}}' "$tag"
