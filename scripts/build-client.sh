#!/bin/sh
# Builds bin/podplex-client.c (the shim that forwards CNI calls to `podplex serve`) into
# .tools/podplex-client, or into the path given as $1, for the build id given as $2 (default
# "dev": a checkout's client, which a daemon of an artifact never serves); $3 names another
# source that includes the shim (bin/node-entry.c, the node artifact's entry). The protocol's
# header is generated from cli/serve/protocol.ts first (scripts/gen_protocol.ts). Run by
# setup, by scripts/artifact.sh (the node artifact's copy, with the artifact's id) or by the
# tests; the binary is never committed. A dev build is redone only when a source is newer.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
src=${3:-$root/bin/podplex-client.c}
proto=$root/cli/serve/protocol.ts
out=${1:-$root/.tools/podplex-client}
id=${2:-dev}
cc=${CC:-cc}
deno=${DENO:-$root/.tools/node_modules/.bin/deno}
if [ "$id" = dev ] && [ -x "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt "$proto" ] &&
  [ "$out" -nt "$root/bin/podplex-client.c" ]; then
  exit 0
fi
case $id in *[!0-9a-zA-Z._-]*|'') echo "build-client: invalid build id \"$id\"" >&2; exit 1 ;; esac
command -v "$cc" >/dev/null 2>&1 || {
  echo "build-client: no C compiler \"$cc\" (apt-get install gcc, or set CC)" >&2
  exit 1
}
[ -x "$deno" ] || { echo "build-client: no Deno at $deno (run bash scripts/setup.sh)" >&2; exit 1; }
inc=$(mktemp -d)
trap 'rm -rf "$inc"' EXIT
"$deno" run --quiet --no-config --allow-read --allow-write "$root/scripts/gen_protocol.ts" \
  --c "$inc/podplex_protocol.h"
mkdir -p "$(dirname "$out")"
# Static: the dynamic loader's work (find and map libc, relocate) is ~0.9 ms of every call's
# exec on a node (bench/entry_bench.ts), more than the client's own work. Nothing here uses
# NSS, so a static glibc is safe; without libc.a (a C library with no static archive) dynamic.
flags="-O2 -Wall -Wextra -I$inc -DPODPLEX_BUILD_ID=\"$id\""
# shellcheck disable=SC2086 # $flags is split on purpose (no spaces inside a flag)
"$cc" $flags -static -o "$out.new" "$src" 2>/dev/null || "$cc" $flags -o "$out.new" "$src"
mv "$out.new" "$out"
