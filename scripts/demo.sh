#!/usr/bin/env bash
# podplex demo: podplex as the cluster network of three simulated nodes. A real etcd (Debian's
# etcd-server) and an underlay bridge live in a netns of their own; the nodes (netns
# ppdemo-nodeA/B/C) join it by veth, in dual stack (IPv4 and IPv6 underlay), each runs
# 'podplex serve --cluster-network', which leases the node a /24 of 10.244.0.0/16 and a /64 of
# fd32::/56 in one lease in etcd and programs the other nodes' VXLAN routes, neighbours and FDB
# entries on both VTEPs (podplex.1 over IPv4, podplex-v6.1 over IPv6). Pods ('podplex pod up',
# definitions from examples/demo) get an address of each family and ping each other across
# nodes by pod IP over both; node C leaves and its routes disappear from A and B; then
# everything is torn down.
#
# Everything it makes is named ppdemo* and lives in its own netns; state, leases, confs and
# etcd's data go to a temp dir. The host's interfaces, /etc/cni and /var/lib/cni are never
# touched. It cleans up on success, on failure and on Ctrl-C, and exits non-zero when any
# step fails.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
podplex="$root/bin/podplex"
nodes=(A B C)
pods=(a1 a2 b1 c1)
etcd_ip=10.250.99.1
ul6=fd31:: # the IPv6 underlay: fd31::/64

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: must run as root (it creates network namespaces)" >&2
  exit 1
fi
if ! [ -x /usr/bin/etcd ]; then
  echo "demo: no /usr/bin/etcd (Debian's etcd-server; run bash scripts/setup.sh)" >&2
  exit 1
fi

work=$(mktemp -d /tmp/ppdemo.XXXXXX)
bold=$(tput bold 2>/dev/null || true)
plain=$(tput sgr0 2>/dev/null || true)
started=$(date +%s)
declare -A agent_pid=()
etcd_pid=

step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }

# Runs podplex inside a node's netns, as that node (its conf, its name in the cluster); exec'd,
# so that a background run's pid is podplex's.
on() { (exec_on "$@"); }
exec_on() {
  local node=$1
  shift
  exec ip netns exec "ppdemo-node$node" env \
    PODPLEX_CONFIG="$work/node-${node,,}/podplex.conflist" CNI_PATH=/usr/lib/cni \
    PODPLEX_NODE_NAME="node-${node,,}" PODPLEX_SOCKET=/nonexistent/podplex.sock \
    "$podplex" "$@"
}

stop_agent() {
  local node=$1 pid=${agent_pid[$1]:-}
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "agent_pid[$node]"
}

cleanup() {
  local rc=$?
  # A second Ctrl-C must not cut the teardown short (ignored signals are inherited, so the
  # podplex runs below finish too); it takes about a second.
  trap '' INT TERM
  trap - EXIT
  set +e
  step "teardown"
  for pod in "${pods[@]}"; do
    local node=${pod:0:1}
    if [ -f "$work/node-$node/state/standalone/podplex-demo-$pod.json" ]; then
      on "${node^^}" pod down "$pod" --namespace demo || rc=1
    fi
  done
  for n in "${nodes[@]}"; do stop_agent "$n"; done
  if [ -n "$etcd_pid" ]; then
    kill "$etcd_pid" 2>/dev/null
    wait "$etcd_pid" 2>/dev/null
  fi
  for ns in "${pods[@]/#/ppdemo-}" "${nodes[@]/#/ppdemo-node}" ppdemo-ul; do
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
    printf '\n%sdemo: success in %ss, nothing left behind%s\n' "$bold" "$(($(date +%s) - started))" "$plain"
  else
    printf '\n%sdemo: FAILED (exit %s)%s\n' "$bold" "$rc" "$plain" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits (up to $2 tenths of a second) until the command in $3... succeeds.
wait_for() {
  local what=$1 tenths=$2
  shift 2
  for _ in $(seq "$tenths"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "demo: $what did not happen" >&2
  return 1
}

etcd_healthy() {
  ip netns exec ppdemo-ul bash -c "exec 3<>/dev/tcp/$etcd_ip/2379 &&
    printf 'GET /health HTTP/1.0\r\n\r\n' >&3 && grep -q '\"health\":\"true\"' <&3"
}

step "the underlay: netns ppdemo-ul with bridge ppdemo-br ($etcd_ip/24, ${ul6}1/64) and etcd on $etcd_ip:2379"
ip netns add ppdemo-ul
ip -n ppdemo-ul link set lo up
ip -n ppdemo-ul link add ppdemo-br type bridge
ip -n ppdemo-ul addr add "$etcd_ip/24" dev ppdemo-br
ip -n ppdemo-ul addr add "${ul6}1/64" dev ppdemo-br nodad
ip -n ppdemo-ul link set ppdemo-br up
ip netns exec ppdemo-ul /usr/bin/etcd --name ppdemo --data-dir "$work/etcd" \
  --listen-client-urls "http://$etcd_ip:2379" --advertise-client-urls "http://$etcd_ip:2379" \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster ppdemo=http://127.0.0.1:2380 --logger zap --log-outputs "$work/etcd.log" \
  >/dev/null 2>&1 &
etcd_pid=$!
wait_for "etcd answering" 100 etcd_healthy
echo "etcd $(/usr/bin/etcd --version | head -1 | awk '{print $3}') up"

step "three nodes on the underlay: A, B, C (10.250.99.11-13, ${ul6}11-13)"
i=11
for n in "${nodes[@]}"; do
  ip netns add "ppdemo-node$n"
  ip -n "ppdemo-node$n" link set lo up
  ip -n ppdemo-ul link add "ppdemo-u$n" type veth peer name eth0 netns "ppdemo-node$n"
  ip -n ppdemo-ul link set "ppdemo-u$n" master ppdemo-br up
  ip -n "ppdemo-node$n" addr add "10.250.99.$i/24" dev eth0
  # A fresh node's addresses are usable at once (no duplicate address detection): a real
  # node's settled long ago.
  ip netns exec "ppdemo-node$n" sysctl -qw net.ipv6.conf.eth0.accept_dad=0
  ip -n "ppdemo-node$n" addr add "${ul6}$i/64" dev eth0 nodad
  ip -n "ppdemo-node$n" link set eth0 up
  i=$((i + 1))
done
echo "ppdemo-nodeA, ppdemo-nodeB, ppdemo-nodeC up"

step "network definitions from examples/demo (paths rewritten into $work)"
for n in a b c; do
  cp -r "$root/examples/demo/node-a" "$work/node-$n"
  grep -rl 'node-a\|@DEMO_DIR@' "$work/node-$n" |
    xargs sed -i -e "s#@DEMO_DIR@#$work#g" -e "s#/node-a/#/node-$n/#g"
done
on A net validate
on A net list

step "node agents: 'podplex serve --cluster-network' on each node"
for n in "${nodes[@]}"; do
  (exec_on "$n" serve --socket "$work/node-${n,,}/serve.sock" \
    --cluster-network "$work/node-${n,,}/networks.d/demo/cluster.json") \
    2>"$work/node-${n,,}/agent.log" &
  agent_pid[$n]=$!
  wait_for "node $n joining" 150 test -S "$work/node-${n,,}/cluster/cluster/agent.sock"
  grep -o 'node "node-.*' "$work/node-${n,,}/agent.log" | head -1
done
wait_for "node A seeing B and C" 30 bash -c \
  "[ \$(ip -n ppdemo-nodeA route show dev podplex.1 | wc -l) -eq 2 ] &&
   [ \$(ip -n ppdemo-nodeA -6 route show dev podplex-v6.1 | grep -c via) -eq 2 ]"
on A net nodes

step "pods: a1 and a2 on node A (cluster network + lan), b1 on node B, c1 on node C"
# The pod netns are made here, in the host's mount namespace: 'ip netns exec' gives podplex
# a private mount namespace, so a netns it bind-mounted there would vanish with it.
for pod in "${pods[@]}"; do ip netns add "ppdemo-$pod"; done
on A pod up --annotations "$root/examples/demo/pod-a1.yaml" --netns /run/netns/ppdemo-a1
on A pod up a2 --namespace demo --networks lan --netns /run/netns/ppdemo-a2
on B pod up b1 --namespace demo --netns /run/netns/ppdemo-b1
on C pod up c1 --namespace demo --netns /run/netns/ppdemo-c1
on A pod list

addr_of() { ip -n "$1" -4 -o addr show dev "$2" | awk '{print $4}' | cut -d/ -f1; }
addr6_of() { ip -n "$1" -6 -o addr show dev "$2" scope global | awk '{print $4}' | cut -d/ -f1; }
b1_ip=$(addr_of ppdemo-b1 eth0)
c1_ip=$(addr_of ppdemo-c1 eth0)
b1_ip6=$(addr6_of ppdemo-b1 eth0)
c1_ip6=$(addr6_of ppdemo-c1 eth0)
a1_lan=$(addr_of ppdemo-a1 net1)
echo "a1's eth0: $(addr_of ppdemo-a1 eth0) and $(addr6_of ppdemo-a1 eth0)"

step "node A: the VXLAN routes to B's and C's subnets (IPv4 and IPv6 VTEP), and the graph"
ip -n ppdemo-nodeA route show dev podplex.1
ip -n ppdemo-nodeA -6 route show dev podplex-v6.1 | grep via
on A graph

step "across nodes by pod IP: a1 (node A) -> b1 ($b1_ip, node B) and c1 ($c1_ip, node C)"
on A pod exec a1 --namespace demo -- ping -c 2 -i 0.2 -W 1 "$b1_ip"
on A pod exec a1 --namespace demo -- ping -c 2 -i 0.2 -W 1 "$c1_ip"
on B pod exec b1 --namespace demo -- ping -c 2 -i 0.2 -W 1 "$c1_ip"

step "the same over IPv6: a1 -> b1 ($b1_ip6) and c1 ($c1_ip6), b1 -> c1"
on A pod exec a1 --namespace demo -- ping -6 -c 2 -i 0.2 -W 1 "$b1_ip6"
on A pod exec a1 --namespace demo -- ping -6 -c 2 -i 0.2 -W 1 "$c1_ip6"
on B pod exec b1 --namespace demo -- ping -6 -c 2 -i 0.2 -W 1 "$c1_ip6"

step "on node A: a2 -> a1 over the node-local lan network ($a1_lan, a1's net1)"
on A pod exec a2 --namespace demo -- ping -c 2 -i 0.2 -W 1 -I net1 "$a1_lan"

step "node C leaves: its pod down, its agent stopped, 'podplex net leave'"
on C pod down c1 --namespace demo
stop_agent C
on C net leave
wait_for "C's routes going from node A" 30 bash -c \
  "[ \$(ip -n ppdemo-nodeA route show dev podplex.1 | wc -l) -eq 1 ] &&
   [ \$(ip -n ppdemo-nodeA -6 route show dev podplex-v6.1 | grep -c via) -eq 1 ]"
echo "node A's VXLAN routes now:"
ip -n ppdemo-nodeA route show dev podplex.1
ip -n ppdemo-nodeA -6 route show dev podplex-v6.1 | grep via
on A net nodes
for ip in "$c1_ip" "$c1_ip6"; do
  if on A pod exec a1 --namespace demo -- ping -c 1 -W 1 "$ip" >/dev/null 2>&1; then
    echo "demo: $ip still answers after node C left" >&2
    exit 1
  fi
done
echo "c1's addresses no longer answer"
on A pod exec a1 --namespace demo -- ping -c 1 -W 1 "$b1_ip" >/dev/null &&
  on A pod exec a1 --namespace demo -- ping -6 -c 1 -W 1 "$b1_ip6" >/dev/null &&
  echo "b1's still do"
