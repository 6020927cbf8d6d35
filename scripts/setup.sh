#!/usr/bin/env bash
# Installs what podplex needs on a fresh Debian machine of this kind, idempotently:
# the kernel-facing libraries (libnl), the tools the tests and the demo use, and a
# pinned Deno under .tools/ for bin/podplex (runtimes exec it without npx).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
DENO_VERSION=2.9.6

pkgs=(libnl-3-200 libnl-route-3-200 iproute2 iputils-ping iptables nftables libnftables1 containernetworking-plugins
  podman runc containerd busybox-static gcc libc6-dev mmdebstrap etcd-server dnsmasq-base iperf3 curl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "podplex setup: missing packages ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "podplex setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=120 update -qq >/dev/null
  apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

deno_bin="$root/.tools/node_modules/.bin/deno"
if ! [ -x "$deno_bin" ] || ! "$deno_bin" --version 2>/dev/null | grep -q "^deno $DENO_VERSION "; then
  echo "podplex setup: installing deno $DENO_VERSION under .tools/" >&2
  mkdir -p "$root/.tools"
  npm install --silent --no-audit --no-fund --prefix "$root/.tools" "deno@$DENO_VERSION" >/dev/null
fi

# npm packages from deno.json's imports into Deno's cache, for `deno bundle` (the node
# artifact inlines them: it never reads this cache) and for the tests that run the sources.
(cd "$root" && "$deno_bin" install --quiet >/dev/null)

# The C client of `podplex serve` (tests/serve_test.ts runs it; the artifact has its own copy).
sh "$root/scripts/build-client.sh"
