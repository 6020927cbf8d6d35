#!/usr/bin/env bash
# `deno task pod ...` and `deno task net ...`: podplex's standalone subcommands from a
# checkout, as `bin/podplex pod|net ...` would run them. Installs what it lacks first
# (scripts/setup.sh, as the demo does) and rebuilds the artifact only when a source is newer
# than it, so a second call starts at once.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
entry=$root/dist/node/podplex
if [ ! -x "$entry" ] ||
  [ -n "$(find "$root/cli" "$root/conf" "$root/delegates" "$root/meta" "$root/ffi" "$root/bin" \
    "$root/deno.json" -newer "$entry" -type f -print -quit)" ]; then
  bash "$root/scripts/artifact.sh" >&2
fi
exec "$root/bin/podplex" "$@"
