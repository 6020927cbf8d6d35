#!/bin/sh
# Builds bin/podplex-client.c into .tools/podplex-client, or into the path given as $1 (the
# shim that forwards CNI calls to `podplex serve`). Run by setup, by scripts/artifact.sh (the
# node artifact's copy) or by tests/serve_test.ts; the binary is never committed.
# Rebuilds only when the source is newer than the binary.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/bin/podplex-client.c
out=${1:-$root/.tools/podplex-client}
cc=${CC:-cc}
if [ -x "$out" ] && [ "$out" -nt "$src" ]; then
  exit 0
fi
command -v "$cc" >/dev/null 2>&1 || {
  echo "build-client: no C compiler \"$cc\" (apt-get install gcc, or set CC)" >&2
  exit 1
}
mkdir -p "$(dirname "$out")"
"$cc" -O2 -Wall -Wextra -o "$out.new" "$src"
mv "$out.new" "$out"
