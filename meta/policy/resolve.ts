/**
 * Resolves the policies of a {@linkcode PolicyWorld} into the concrete rules of one pod:
 * per interface, whether ingress/egress is isolated (and by which policies) and the list of
 * allows (peer addresses × ports), each naming the policy rule it comes from. This is what
 * the nftables renderer draws and what `policy show` prints.
 *
 * Kubernetes' semantics: a pod is isolated in a direction when any policy of that type
 * selects it; what is allowed is then the union of the rules of all those policies.
 * NetworkPolicy applies to the cluster network's interface, a MultiNetworkPolicy to the
 * interfaces on the networks of its `policy-for`; peers are their addresses on that network.
 *
 * @module
 */
import { contains, tryParseCidr, tryParseIp } from "../../conf/ip.ts";
import { matches } from "./selector.ts";
import {
  type Peer,
  type PodInterface,
  type PodView,
  type Policy,
  policyId,
  type PolicyPort,
  type PolicyRule,
  type PolicyWorld,
  type Protocol,
} from "./types.ts";

/** A concrete port (or range, or every port) of one protocol. */
export interface PortMatch {
  protocol: Protocol;
  /** Undefined: every port of the protocol. */
  port?: number;
  endPort?: number;
}

/** Who an allow lets in (ingress) or reaches (egress). */
export type PeerMatch =
  | { kind: "any" }
  | { kind: "ips"; ips: string[]; why: string }
  | { kind: "cidr"; cidr: string; except: string[] };

/** One allow: traffic from/to `peer` on `ports` (undefined: any port, any protocol). */
export interface Allow {
  /** `Kind ns/name` of the policy. */
  policy: string;
  /** `ingress[0]`, `egress[2]`. */
  rule: string;
  peer: PeerMatch;
  ports?: PortMatch[];
}

/** One direction of one interface. */
export interface DirectionRules {
  /** The policies isolating this direction (none: everything passes, no chain). */
  isolatedBy: string[];
  allows: Allow[];
  /** Named ports of these rules that no container of the pod (or the peers) has. */
  unresolved: string[];
}

/** The rules of one interface of a pod. */
export interface InterfaceRules {
  ifname: string;
  network: string;
  cluster: boolean;
  ips: string[];
  /** The node's addresses whose traffic to the pod always passes (cluster network). */
  nodeIps: string[];
  ingress?: DirectionRules;
  egress?: DirectionRules;
}

/** Everything enforced for one pod. */
export interface PodRules {
  namespace: string;
  name: string;
  interfaces: InterfaceRules[];
}

/** Whether `p` applies on interface `i`. */
function appliesOn(p: Policy, i: PodInterface): boolean {
  return p.kind === "NetworkPolicy" ? i.cluster : (p.policyFor ?? []).includes(i.network);
}

/** The addresses of `pod` on the networks `p` governs (the cluster network for NetworkPolicy). */
function addressesFor(p: Policy, pod: PodView): string[] {
  return pod.interfaces.filter((i) => appliesOn(p, i)).flatMap((i) => i.ips);
}

function nsLabels(world: PolicyWorld, ns: string): Record<string, string> {
  return world.namespaces.find((n) => n.name === ns)?.labels ?? {};
}

/** The pods a `pods` peer of policy `p` selects. */
function peerPods(world: PolicyWorld, p: Policy, peer: Extract<Peer, { kind: "pods" }>) {
  return world.pods.filter((pod) => {
    const nsOk = peer.namespaceSelector
      ? matches(peer.namespaceSelector, nsLabels(world, pod.namespace))
      : pod.namespace === p.namespace;
    return nsOk && (!peer.podSelector || matches(peer.podSelector, pod.labels));
  });
}

function inBlock(ip: string, block: Extract<Peer, { kind: "ipBlock" }>): boolean {
  const a = tryParseIp(ip);
  const c = tryParseCidr(block.cidr);
  if (!a || !c || a.family !== c.family || !contains(c, a)) return false;
  return !block.except.some((x) => {
    const e = tryParseCidr(x);
    return e !== undefined && e.family === a.family && contains(e, a);
  });
}

function describePeer(peer: Peer): string {
  if (peer.kind === "ipBlock") return `ipBlock ${peer.cidr}`;
  return [
    peer.namespaceSelector ? "namespaceSelector" : "",
    peer.podSelector ? "podSelector" : "",
  ].filter(Boolean).join("+");
}

/** A named port on `pod`'s containers, or undefined. */
function namedPort(pod: PodView, name: string, protocol: Protocol): number | undefined {
  return pod.ports.find((c) => c.name === name && c.protocol === protocol)?.port;
}

/**
 * The peers already resolved in one world, by peer: a caller resolving many pods of a world
 * that does not change meanwhile hands one to {@linkcode resolvePod} (a peer's pods do not
 * depend on the pod being resolved), so each peer is resolved once, not once a pod.
 */
export type PeerCache = Map<Peer, PeerMatch>;

/** The peer matches of a rule: undefined peers = anyone. */
function peerMatches(world: PolicyWorld, p: Policy, r: PolicyRule, cache?: PeerCache) {
  if (!r.peers) return [{ kind: "any" } as PeerMatch];
  return r.peers.map((peer): PeerMatch => {
    if (peer.kind === "ipBlock") return { kind: "cidr", cidr: peer.cidr, except: peer.except };
    const held = cache?.get(peer);
    if (held) return held;
    const ips = peerPods(world, p, peer).flatMap((pod) => addressesFor(p, pod));
    const m: PeerMatch = { kind: "ips", ips: [...new Set(ips)].sort(), why: describePeer(peer) };
    cache?.set(peer, m);
    return m;
  });
}

function numeric(ports: PolicyPort[]): PortMatch[] {
  return ports.filter((x) => typeof x.port !== "string").map((x) => ({
    protocol: x.protocol,
    ...(x.port !== undefined ? { port: x.port as number } : {}),
    ...(x.endPort !== undefined ? { endPort: x.endPort } : {}),
  }));
}

/** The allows of one ingress rule: named ports resolve on the selected pod itself. */
function ingressAllows(
  world: PolicyWorld,
  p: Policy,
  r: PolicyRule,
  self: PodView,
  out: DirectionRules,
  cache?: PeerCache,
) {
  const base = { policy: policyId(p), rule: `ingress[${r.index}]` };
  let ports: PortMatch[] | undefined;
  if (r.ports) {
    ports = numeric(r.ports);
    for (const x of r.ports.filter((x) => typeof x.port === "string")) {
      const n = namedPort(self, x.port as string, x.protocol);
      if (n === undefined) {
        out.unresolved.push(`${base.policy} ${base.rule}: ${x.port}/${x.protocol}`);
      } else ports.push({ protocol: x.protocol, port: n });
    }
    if (ports.length === 0) return; // only named ports, none resolved: allows nothing
  }
  for (const peer of peerMatches(world, p, r, cache)) {
    out.allows.push({ ...base, peer, ...(ports ? { ports } : {}) });
  }
}

/**
 * The allows of one egress rule: named ports resolve on each destination pod (those the
 * peers select, or every pod with `to` empty, or the pods inside an ipBlock).
 */
function egressAllows(
  world: PolicyWorld,
  p: Policy,
  r: PolicyRule,
  out: DirectionRules,
  cache?: PeerCache,
) {
  const base = { policy: policyId(p), rule: `egress[${r.index}]` };
  const peers = peerMatches(world, p, r, cache);
  const fixed = r.ports ? numeric(r.ports) : undefined;
  if (!r.ports || fixed!.length) {
    for (const peer of peers) {
      out.allows.push({ ...base, peer, ...(fixed ? { ports: fixed } : {}) });
    }
  }
  for (const x of (r.ports ?? []).filter((x) => typeof x.port === "string")) {
    const byPort = new Map<number, string[]>();
    for (const pod of world.pods) {
      const n = namedPort(pod, x.port as string, x.protocol);
      if (n === undefined) continue;
      const ips = addressesFor(p, pod).filter((ip) => peerAdmits(world, p, r, pod, ip));
      if (ips.length) byPort.set(n, [...(byPort.get(n) ?? []), ...ips]);
    }
    if (byPort.size === 0) {
      out.unresolved.push(`${base.policy} ${base.rule}: ${x.port}/${x.protocol}`);
    }
    for (const [n, ips] of byPort) {
      out.allows.push({
        ...base,
        peer: { kind: "ips", ips: [...new Set(ips)].sort(), why: `pods with port ${x.port}` },
        ports: [{ protocol: x.protocol, port: n }],
      });
    }
  }
}

/** Whether one of the rule's peers admits `pod` at `ip` (undefined peers: anyone). */
function peerAdmits(world: PolicyWorld, p: Policy, r: PolicyRule, pod: PodView, ip: string) {
  if (!r.peers) return true;
  return r.peers.some((peer) =>
    peer.kind === "ipBlock" ? inBlock(ip, peer) : peerPods(world, p, peer).includes(pod)
  );
}

function emptyDirection(): DirectionRules {
  return { isolatedBy: [], allows: [], unresolved: [] };
}

/**
 * The rules of one pod in a world.
 *
 * @example
 * ```ts
 * const rules = resolvePod(world, world.pods[0]);
 * rules.interfaces[0].ingress?.isolatedBy; // ["NetworkPolicy x/deny-all"]
 * ```
 *
 * @param cache peers resolved before in this same world (see {@linkcode PeerCache})
 */
export function resolvePod(world: PolicyWorld, pod: PodView, cache?: PeerCache): PodRules {
  const interfaces = pod.interfaces.map((i): InterfaceRules => {
    const out: InterfaceRules = {
      ifname: i.ifname,
      network: i.network,
      cluster: i.cluster,
      ips: i.ips,
      nodeIps: i.cluster ? (i.nodeIps ?? []) : [],
    };
    for (const p of world.policies) {
      if (
        p.namespace !== pod.namespace || !appliesOn(p, i) || !matches(p.podSelector, pod.labels)
      ) continue;
      if (p.ingressIsolated) {
        const d = (out.ingress ??= emptyDirection());
        d.isolatedBy.push(policyId(p));
        for (const r of p.ingress) ingressAllows(world, p, r, pod, d, cache);
      }
      if (p.egressIsolated) {
        const d = (out.egress ??= emptyDirection());
        d.isolatedBy.push(policyId(p));
        for (const r of p.egress) egressAllows(world, p, r, d, cache);
      }
    }
    return out;
  });
  return { namespace: pod.namespace, name: pod.name, interfaces };
}

/** Whether a port match admits `port`/`protocol`. */
export function portAdmits(m: PortMatch, port: number, protocol: Protocol): boolean {
  if (m.protocol !== protocol) return false;
  if (m.port === undefined) return true;
  return port >= m.port && port <= (m.endPort ?? m.port);
}

/** Whether a peer match admits address `ip`. */
export function peerMatchAdmits(m: PeerMatch, ip: string): boolean {
  if (m.kind === "any") return true;
  if (m.kind === "ips") return m.ips.includes(ip);
  return inBlock(ip, { kind: "ipBlock", cidr: m.cidr, except: m.except });
}

/** The verdict of one direction for one packet: the allow that admits it, if any. */
export interface DirectionVerdict {
  allowed: boolean;
  /** Why: "not isolated", "node address", the allow's policy and rule, or the isolating policies. */
  reason: string;
}

/**
 * Whether one direction of an interface admits a connection with `peerIp` on port/protocol.
 */
export function judge(
  rules: InterfaceRules,
  dir: "ingress" | "egress",
  peerIp: string,
  port: number,
  protocol: Protocol,
): DirectionVerdict {
  const d = rules[dir];
  if (!d) return { allowed: true, reason: `${dir} not isolated` };
  if (dir === "ingress" && rules.nodeIps.includes(peerIp)) {
    return { allowed: true, reason: "from the node itself" };
  }
  const a = d.allows.find((a) =>
    peerMatchAdmits(a.peer, peerIp) &&
    (!a.ports || a.ports.some((m) => portAdmits(m, port, protocol)))
  );
  if (a) return { allowed: true, reason: `${a.policy} ${a.rule}` };
  return {
    allowed: false,
    reason: `${dir} isolated by ${d.isolatedBy.join(", ")}; no rule allows it`,
  };
}
