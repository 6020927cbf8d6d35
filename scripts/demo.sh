#!/usr/bin/env bash
# podplex demo: two simulated nodes (network namespaces ppdemo-nodeA/B joined by an underlay
# veth), pods brought up with 'podplex pod up' from the definitions in examples/demo, pings
# over a node-local bridge network and over a VXLAN overlay between the nodes, then teardown.
#
# Everything it makes is named ppdemo* and lives in its own netns; state, leases and confs go
# to a temp dir. The host's interfaces, /etc/cni and /var/lib/cni are never touched. It
# cleans up on success, on failure and on Ctrl-C, and exits non-zero when any step fails.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
podplex="$root/bin/podplex"
nodes=(A B)
pod_netns=(ppdemo-a1 ppdemo-a2 ppdemo-b1)

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: must run as root (it creates network namespaces)" >&2
  exit 1
fi

work=$(mktemp -d /tmp/ppdemo.XXXXXX)
bold=$(tput bold 2>/dev/null || true)
plain=$(tput sgr0 2>/dev/null || true)

step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }

# Runs podplex inside a node's netns, so the node's bridge and vxlan device live there.
on() {
  local node=$1
  shift
  ip netns exec "ppdemo-node$node" env \
    PODPLEX_CONFIG="$work/node-${node,,}/podplex.conflist" CNI_PATH=/usr/lib/cni \
    "$podplex" "$@"
}

cleanup() {
  local rc=$?
  # A second Ctrl-C must not cut the teardown short (ignored signals are inherited, so the
  # podplex runs below finish too); it takes about a second.
  trap '' INT TERM
  trap - EXIT
  set +e
  step "teardown"
  for pod in a1 a2 b1; do
    local node=${pod:0:1}
    if [ -f "$work/node-$node/state/standalone/podplex-demo-$pod.json" ]; then
      on "${node^^}" pod down "$pod" --namespace demo || rc=1
    fi
  done
  for ns in "${pod_netns[@]}" ppdemo-nodeA ppdemo-nodeB; do
    ip netns delete "$ns" 2>/dev/null
  done
  rm -rf "$work"
  local left
  left=$(ip netns list | grep -c '^ppdemo' || true)
  if [ "$left" -ne 0 ]; then
    echo "demo: $left ppdemo netns left behind" >&2
    rc=1
  fi
  if [ "$rc" -eq 0 ]; then
    printf '\n%sdemo: success, nothing left behind%s\n' "$bold" "$plain"
  else
    printf '\n%sdemo: FAILED (exit %s)%s\n' "$bold" "$rc" "$plain" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "two nodes joined by an underlay veth (10.250.99.1 <-> 10.250.99.2)"
for n in "${nodes[@]}"; do
  ip netns add "ppdemo-node$n"
  ip -n "ppdemo-node$n" link set lo up
done
ip -n ppdemo-nodeA link add ppdemo-ua type veth peer name ppdemo-ub netns ppdemo-nodeB
ip -n ppdemo-nodeA addr add 10.250.99.1/24 dev ppdemo-ua
ip -n ppdemo-nodeB addr add 10.250.99.2/24 dev ppdemo-ub
ip -n ppdemo-nodeA link set ppdemo-ua up
ip -n ppdemo-nodeB link set ppdemo-ub up
echo "ppdemo-nodeA, ppdemo-nodeB up"

step "network definitions from examples/demo (paths rewritten into $work)"
cp -r "$root/examples/demo/node-a" "$root/examples/demo/node-b" "$work/"
grep -rl '@DEMO_DIR@' "$work" | xargs sed -i "s#@DEMO_DIR@#$work#g"
on A net validate
on A net list

step "pods: a1 (lan + overlay) and a2 (lan) on node A, b1 (lan + overlay) on node B"
# The pod netns are made here, in the host's mount namespace: 'ip netns exec' gives podplex
# a private mount namespace, so a netns it bind-mounted there would vanish with it.
for ns in "${pod_netns[@]}"; do ip netns add "$ns"; done
on A pod up --annotations "$root/examples/demo/pod-a1.yaml" --netns /run/netns/ppdemo-a1
on A pod up a2 --namespace demo --netns /run/netns/ppdemo-a2
on B pod up --annotations "$root/examples/demo/pod-b1.yaml" --netns /run/netns/ppdemo-b1

step "pod list on node A and on node B"
on A pod list
on B pod list

step "node A: status and graph"
on A status
on A graph

addr_of() { ip -n "$1" -4 -o addr show dev "$2" | awk '{print $4}' | cut -d/ -f1; }
a2_ip=$(addr_of ppdemo-a2 eth0)
b1_ip=$(addr_of ppdemo-b1 net1)

step "bridge: a1 -> a2 ($a2_ip) on node A"
on A pod exec a1 --namespace demo -- ping -c 3 -i 0.2 -W 1 "$a2_ip"

step "overlay: a1 (node A) -> b1 ($b1_ip, node B) over VXLAN VNI 42"
on A pod exec a1 --namespace demo -- ping -c 3 -i 0.2 -W 1 "$b1_ip"

step "CHECK every pod"
on A pod check a1 --namespace demo
on A pod check a2 --namespace demo
on B pod check b1 --namespace demo
