#!/usr/bin/env bash
# Builds the self-contained node artifact (`deno task artifact`, also `deno task build`) into
# dist/node/, or into the directory given as $1:
#
#   podplex                 the entry (bin/node-entry.c compiled with the version)
#   podplex.d/<version>/    main.js + chunks   one bundle, every npm package inlined
#                           deno               the pinned runtime, copied from .tools/
#                           libnl-3.so.200, libnl-route-3.so.200   copied from the system;
#                                              ffi/ opens these before the system's
#                           podplex-client     the `podplex serve` client (bin/podplex-client.c)
#                           build-id           <version>, read by `podplex serve`
#
# <version> is a hash of the payload (and of the client's sources), so the same sources give
# the same artifact and an install of an unchanged one changes nothing. It is also the build
# id of the serve protocol's handshake: the client is compiled with it and a daemon serves
# only clients of its own build (cli/serve/protocol.ts); the entry is compiled with it too.
# bin/podplex, the demo and the tests run this.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/dist/node}
deno=${DENO:-$root/.tools/node_modules/.bin/deno}
[ -x "$deno" ] || { echo "artifact: no Deno at $deno (run bash scripts/setup.sh)" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
stage=$(mktemp -d "$(dirname "$out")/.artifact.XXXXXX")
trap 'rm -rf "$stage"' EXIT
payload=$stage/payload
mkdir "$payload"

# --platform=browser picks each package's ESM export: yaml's "node" export is CommonJS, whose
# inlined form imports node:module at the start of every call (conf/yaml.ts).
(cd "$root" && "$deno" bundle --quiet --platform=browser --code-splitting --outdir "$payload" \
  cli/main.ts)
if leftovers=$(grep -l -E '"npm:|"jsr:|"https?:|from "node:module"' "$payload"/*.js); then
  echo "artifact: the bundle still resolves modules at run time: $leftovers" >&2
  exit 1
fi
# Deno builds the whole module graph before it runs main.js, and a dynamic import of a string
# literal is part of that graph: every call read, hashed and looked up in the dependency cache
# all ~100 chunks (1 MB: serve, install, policy, yaml...) to run the ~40 a CNI ADD needs,
# ~11 ms of each call's start on this machine. An import whose specifier is not a literal is
# left out of the graph and loaded when it runs, so each chunk's `import("./x.js")` becomes
# `import(String("./x.js"))`: the same module, resolved against the same chunk, when needed.
sed -i -E 's/import\("(\.\/[A-Za-z0-9_-]+\.js)"\)/import(String("\1"))/g' "$payload"/*.js
if grep -l -E 'import\("\./' "$payload"/*.js; then
  echo "artifact: a chunk still imports a literal specifier dynamically (above)" >&2
  exit 1
fi

cp -L "$deno" "$payload/deno"
for so in libnl-3.so.200 libnl-route-3.so.200; do
  src=$(/sbin/ldconfig -p | awk -v so="$so" '$1 == so && !found { print $NF; found = 1 }')
  [ -n "$src" ] || { echo "artifact: $so not found (apt-get install libnl-3-200 libnl-route-3-200)" >&2; exit 1; }
  cp -L "$src" "$payload/$so"
done

# The id covers everything but the client binary, which is compiled with it.
version=$({ (cd "$payload" && find . -type f | LC_ALL=C sort | xargs sha256sum)
  sha256sum "$root/bin/podplex-client.c" "$root/bin/node-entry.c" "$root/cli/serve/protocol.ts" \
    "$root/scripts/build-client.sh" |
    cut -d' ' -f1
} | sha256sum | cut -c1-12)
DENO=$deno sh "$root/scripts/build-client.sh" "$payload/podplex-client" "$version"
printf '%s\n' "$version" > "$payload/build-id"
mkdir -p "$stage/node/podplex.d"
mv "$payload" "$stage/node/podplex.d/$version"
DENO=$deno sh "$root/scripts/build-client.sh" "$stage/node/podplex" "$version" \
  "$root/bin/node-entry.c"
chmod 755 "$stage/node/podplex"
rm -rf "$out"
mv "$stage/node" "$out"
