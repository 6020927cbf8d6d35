/**
 * One join of a node to the cluster network, shared by the node agent (at start and after a
 * lost lease) and by a CNI ADD that finds no agent: read the config and every lease, take or
 * keep the node's subnets (one of each family the config leases, in one lease), make the
 * VTEPs, program the other nodes' entries from that same list, masquerade when asked, write
 * `node.json` and `subnet.env`.
 *
 * Joins of one node are serialised by a lock file in its state dir, so that two ADDs of a
 * new node never take two subnets.
 *
 * @module
 */
import { CniError, Code } from "../../../conf/errors.ts";
import { type Cidr, formatCidr, formatIp, tryParseIp } from "../../../conf/ip.ts";
import type { LinkInfo, Netlink } from "../../../ffi/mod.ts";
import type { EtcdClient } from "../../../clients/etcd/client.ts";
import { defaultRouteInterface } from "../../_shared/link_common.ts";
import type { ClusterNetConf } from "./conf.ts";
import { ensureMasq } from "./masq.ts";
import { onSegment, planPeers, syncDirectRoutes } from "./direct.ts";
import {
  type Backend,
  familiesOf,
  type Family,
  leaseFamily,
  type NodeAttrs,
  rangeOf,
  type SubnetLease,
} from "./network.ts";
import { ensureStateDir, type NodeState, writeNodeState } from "./node_state.ts";
import { formatSubnetEnv, writeFileAtomic } from "./subnet_env.ts";
import { acquireSubnet, type ClusterView, type ConfigSeed, readView } from "./subnets.ts";
import { syncOverlay, type SyncReport, vtepAddress } from "./sync.ts";
import { ensureVtep, overlayMtu, stableMac, type VtepSpec } from "./vtep.ts";

/** One family of the node's part: its subnet, the cluster network, its VTEP (vxlan). */
export interface PeerFamily {
  family: Family;
  /** The node's subnet of that family. */
  subnet: string;
  network: Cidr;
  /** The VTEP to make (vxlan only). */
  spec?: VtepSpec;
}

/** What programming the other nodes needs: the backend, the underlay, each family's part. */
export interface PeerContext {
  node: string;
  backend: Backend;
  underlay: LinkInfo;
  families: PeerFamily[];
}

/** What {@linkcode programPeers} changed, and the peers it refused (one message each). */
export interface PeersReport extends SyncReport {
  refused: string[];
}

/**
 * Puts the kernel in line with `leases`, family by family: the VTEP and its entries (vxlan),
 * the underlay's direct routes (host-gw, DirectRouting). The VTEP goes first, so that a peer
 * moving from VXLAN to a direct route has its VTEP route removed before the direct one is
 * added.
 *
 * @throws {CniError} code 101 for a kernel failure
 */
export function programPeers(nl: Netlink, p: PeerContext, leases: SubnetLease[]): PeersReport {
  const underlay = nl.requireLink(p.underlay.index);
  const r: PeersReport = { added: [], removed: [], refused: [] };
  for (const f of p.families) {
    const plan = planPeers(
      leases,
      p.backend,
      { node: p.node, ownSubnet: f.subnet },
      (ip) => onSegment(nl, underlay.index, ip),
      f.family,
    );
    r.refused.push(...plan.refused);
    if (f.spec) {
      const o = syncOverlay(nl, ensureVtep(nl, f.spec), plan.vxlan, f.family);
      r.added.push(...o.added);
      r.removed.push(...o.removed);
    }
    const d = syncDirectRoutes(nl, underlay, f.network, plan.direct);
    r.added.push(...d.added);
    r.removed.push(...d.removed);
  }
  return r;
}

/** What a join did. */
export interface JoinResult {
  state: NodeState;
  /** The view the entries were programmed from (the node's own lease included). */
  view: ClusterView;
  /** Whether the lease key was written (false: found and renewed). */
  wrote: boolean;
  peers: PeerContext;
  report: PeersReport;
}

/** The underlay link and the node's addresses on it. */
export interface Underlay {
  link: LinkInfo;
  /** The IPv4 address ("0.0.0.0" when the network is IPv6 only and there is none). */
  ip: string;
  /** The global IPv6 address, when there is one. */
  ip6?: string;
}

/**
 * The underlay link and the node's address on it of each family in `need` (IPv4 by
 * default; an IPv6 network needs an IPv6 underlay, as flannel's `flannel-v6` device does).
 *
 * @throws {CniError} code 7 naming `iface` / `publicIp` / `publicIpv6`
 */
export function resolveUnderlay(nl: Netlink, c: ClusterNetConf, need: Family[] = [4]): Underlay {
  let link: LinkInfo | null = null;
  const pinned = c.publicIp ?? c.publicIpv6;
  if (c.iface) link = nl.getLink(c.iface);
  else if (pinned) {
    const a = nl.listAddrs().find((x) => sameIp(x.address, pinned));
    if (a) link = nl.getLink(a.index);
  } else {
    const name = defaultRouteInterface(nl);
    if (name) link = nl.getLink(name);
  }
  if (!link) {
    const what = c.iface
      ? `"iface": "${c.iface}" does not exist`
      : pinned
      ? `"${c.publicIp ? "publicIp" : "publicIpv6"}": "${pinned}" is on no link`
      : `no "iface" is given and there is no default route`;
    throw new CniError(
      Code.InvalidConfig,
      `Cannot find the underlay of the cluster network: ${what}`,
    );
  }
  const ip = c.publicIp ?? nl.listAddrs(link.index, 4).find((a) => a.scope === 0)?.address;
  if (!ip && need.includes(4)) {
    throw new CniError(
      Code.InvalidConfig,
      `Cannot find the underlay address: "${link.name}" has no IPv4 address; set "publicIp"`,
    );
  }
  const ip6 = c.publicIpv6 ??
    nl.listAddrs(link.index, 6).find((a) => a.scope === 0 && !a.address.startsWith("fe80:"))
      ?.address;
  if (!ip6 && need.includes(6)) {
    throw new CniError(
      Code.InvalidConfig,
      `Cannot find the IPv6 underlay address: "${link.name}" has no global IPv6 address ` +
        `(the IPv6 cluster network runs over an IPv6 underlay, as flannel's); set "publicIpv6"`,
    );
  }
  const out: Underlay = { link, ip: ip ?? "0.0.0.0" };
  if (ip6) out.ip6 = formatIp(tryParseIp(ip6)!);
  return out;
}

function sameIp(a: string, b: string): boolean {
  const x = tryParseIp(a);
  return !!x && x.value === tryParseIp(b)?.value;
}

/** The attributes the node publishes for the config's families. */
export async function nodeAttrs(
  c: ClusterNetConf,
  u: { ip: string; ip6?: string },
  vni: number,
  backendType: Backend["type"] = "vxlan",
  families: Family[] = [4],
) {
  const attrs: NodeAttrs = {
    node: c.node,
    publicIp: u.ip,
    vtepMac: await stableMac(c.node, vni),
    vni,
    backendType,
    families,
  };
  if (families.includes(6) && u.ip6) {
    attrs.publicIpv6 = u.ip6;
    if (backendType === "vxlan") attrs.vtepMac6 = await stableMac(c.node, vni, 6);
  }
  return attrs;
}

/** The config a node writes to etcd when it has none, from its conf (undefined: none). */
function seedOf(c: ClusterNetConf): ConfigSeed | undefined {
  if (!c.network && !c.ipv6Network) return undefined;
  return {
    network: c.network,
    subnetLen: c.subnetLen,
    ipv6Network: c.ipv6Network,
    ipv6SubnetLen: c.ipv6SubnetLen,
    vni: c.vni,
    port: c.port,
    backend: c.backend,
    directRouting: c.directRouting,
  };
}

/** The VTEP of one family (vxlan), or undefined (host-gw). */
function vtepSpec(
  c: ClusterNetConf,
  backend: Backend,
  family: Family,
  u: Underlay,
  attrs: NodeAttrs,
  subnet: string,
  mtu: number,
): VtepSpec | undefined {
  if (backend.type === "host-gw") return undefined;
  const name = family === 4 ? c.vtepName : c.vtep6Name;
  if (!name) {
    throw new CniError(
      Code.InvalidConfig,
      `Missing "vtep6Name": "podplex-v6.${backend.vni}" is longer than a link name may be`,
    );
  }
  return {
    name,
    vni: backend.vni,
    port: backend.port,
    underlay: u.link,
    local: family === 4 ? u.ip : u.ip6!,
    mac: family === 4 ? attrs.vtepMac : attrs.vtepMac6!,
    address: vtepAddress(subnet),
    mtu,
  };
}

/**
 * Joins (or re-joins) the node; see the module doc.
 *
 * @param prev the node's last state (the subnets to ask for again)
 * @param o.podCidrs the Node's `spec.podCIDRs` (kubeSubnetMgr): the only subnets to take
 * @throws {CniError} 11 when etcd is unreachable, 103 when no subnet is free, 7 for a bad
 *   conf or config, 101 for a kernel failure
 */
export async function joinOnce(
  etcd: EtcdClient,
  c: ClusterNetConf,
  nl: Netlink,
  prev?: NodeState,
  o: { podCidrs?: string[] } = {},
): Promise<JoinResult> {
  const view = await readView(etcd, c.prefix, seedOf(c));
  const { backend } = view.config;
  const fams = familiesOf(view.config);
  const u = resolveUnderlay(nl, c, fams);
  const attrs = await nodeAttrs(c, u, backend.vni, backend.type, fams);
  const got = await acquireSubnet(etcd, c.prefix, attrs, {
    ttlSec: c.leaseTtlSec,
    previous: [prev?.subnet, prev?.subnet6].filter((x): x is string => !!x),
    fixed: o.podCidrs,
    view,
  });
  // host-gw has no VTEP and no encapsulation: the pods get the underlay's MTU.
  const mtu = backend.type === "host-gw"
    ? hostGwMtu(u.link.mtu, c.mtu)
    : overlayMtu(u.link.mtu, c.mtu, fams.includes(6));
  const families: PeerFamily[] = fams.map((family) => {
    const subnet = leaseFamily(got.lease, family)!.subnetText;
    const net = rangeOf(view.config, family)!.network;
    const spec = vtepSpec(c, backend, family, u, attrs, subnet, mtu);
    return { family, subnet, network: net, ...(spec ? { spec } : {}) };
  });
  const peers: PeerContext = { node: c.node, backend, underlay: u.link, families };
  const leases = withOwn(got.view.leases, got.lease);
  const report = programPeers(nl, peers, leases);
  const text = (n: Cidr) => formatCidr(n.network, n.prefix);
  const f4 = families.find((f) => f.family === 4);
  const f6 = families.find((f) => f.family === 6);
  if (c.ipMasq) {
    for (const f of families) await ensureMasq(text(f.network), f.subnet, f.family);
  }
  const state: NodeState = {
    node: c.node,
    network: f4 ? text(f4.network) : "",
    subnet: f4?.subnet ?? "",
    publicIp: u.ip,
    backend: backend.type,
    vtepName: f4?.spec?.name ?? "",
    vtepMac: f4?.spec?.mac ?? "",
    vni: backend.vni,
    port: backend.port,
    mtu,
    ipMasq: c.ipMasq,
    leaseId: got.leaseId,
    updatedAt: Date.now(),
  };
  if (f6) {
    Object.assign(state, { network6: text(f6.network), subnet6: f6.subnet });
    if (attrs.publicIpv6) state.publicIpv6 = attrs.publicIpv6;
    if (f6.spec) Object.assign(state, { vtep6Name: f6.spec.name, vtep6Mac: f6.spec.mac });
  }
  await writeNodeState(c.stateDir, state);
  await writeSubnetFile(c, state);
  return { state, view: { ...got.view, leases }, wrote: got.wrote, peers, report };
}

function hostGwMtu(underlay: number, mtu?: number): number {
  if (mtu !== undefined && mtu > underlay) {
    throw new CniError(
      Code.InvalidConfig,
      `Invalid "mtu": ${mtu} exceeds the underlay's ${underlay}`,
    );
  }
  return mtu ?? underlay;
}

/** The list with the node's lease as it is now (replacing its older self). */
function withOwn(leases: SubnetLease[], own: SubnetLease): SubnetLease[] {
  return [...leases.filter((l) => l.key !== own.key && l.node !== own.node), own];
}

/** Writes flannel's subnet.env for the node's state (skipped when it says the same). */
export async function writeSubnetFile(c: ClusterNetConf, s: NodeState): Promise<void> {
  const text = formatSubnetEnv({
    network: s.network,
    subnet: s.subnet,
    network6: s.network6,
    subnet6: s.subnet6,
    mtu: s.mtu,
    ipMasq: s.ipMasq,
  });
  const old = await Deno.readTextFile(c.subnetFile).catch(() => "");
  if (old !== text) await writeFileAtomic(c.subnetFile, text);
}

/**
 * Runs `fn` holding the node's join lock (`<stateDir>/join.lock`, flock), so that joins of
 * one node from several processes run one at a time.
 */
export async function withJoinLock<T>(stateDir: string, fn: () => Promise<T>): Promise<T> {
  await ensureStateDir(stateDir);
  using f = await Deno.open(`${stateDir}/join.lock`, { create: true, write: true, mode: 0o600 });
  await f.lock(true);
  try {
    return await fn();
  } finally {
    await f.unlock().catch(() => {});
  }
}
