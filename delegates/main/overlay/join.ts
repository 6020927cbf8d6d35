/**
 * One join of a node to the cluster network, shared by the node agent (at start and after a
 * lost lease) and by a CNI ADD that finds no agent: read the config and every lease, take or
 * keep the node's subnet, make the VTEP, program the other nodes' entries from that same
 * list, masquerade when asked, write `node.json` and `subnet.env`.
 *
 * Joins of one node are serialised by a lock file in its state dir, so that two ADDs of a
 * new node never take two subnets.
 *
 * @module
 */
import { CniError, Code } from "../../../conf/errors.ts";
import { type Cidr, formatCidr } from "../../../conf/ip.ts";
import type { LinkInfo, Netlink } from "../../../ffi/mod.ts";
import type { EtcdClient } from "../../../clients/etcd/client.ts";
import { defaultRouteInterface } from "../../_shared/link_common.ts";
import type { ClusterNetConf } from "./conf.ts";
import { ensureMasq } from "./masq.ts";
import { onSegment, planPeers, syncDirectRoutes } from "./direct.ts";
import type { Backend, NodeAttrs, SubnetLease } from "./network.ts";
import { ensureStateDir, type NodeState, writeNodeState } from "./node_state.ts";
import { formatSubnetEnv, writeFileAtomic } from "./subnet_env.ts";
import { acquireSubnet, type ClusterView, readView } from "./subnets.ts";
import { syncOverlay, type SyncReport, vtepAddress } from "./sync.ts";
import { ensureVtep, overlayMtu, stableMac, type VtepSpec } from "./vtep.ts";

/** What programming the other nodes needs: the backend, the VTEP (vxlan), the underlay. */
export interface PeerContext {
  node: string;
  subnet: string;
  backend: Backend;
  network: Cidr;
  underlay: LinkInfo;
  /** The VTEP to make (vxlan only). */
  spec?: VtepSpec;
}

/** What {@linkcode programPeers} changed, and the peers it refused (one message each). */
export interface PeersReport extends SyncReport {
  refused: string[];
}

/**
 * Puts the kernel in line with `leases`: the VTEP and its entries (vxlan), the underlay's
 * direct routes (host-gw, DirectRouting). The VTEP goes first, so that a peer moving from
 * VXLAN to a direct route has its VTEP route removed before the direct one is added.
 *
 * @throws {CniError} code 101 for a kernel failure
 */
export function programPeers(nl: Netlink, p: PeerContext, leases: SubnetLease[]): PeersReport {
  const underlay = nl.requireLink(p.underlay.index);
  const plan = planPeers(
    leases,
    p.backend,
    { node: p.node, ownSubnet: p.subnet },
    (ip) => onSegment(nl, underlay.index, ip),
  );
  const r: PeersReport = { added: [], removed: [], refused: plan.refused };
  if (p.spec) {
    const o = syncOverlay(nl, ensureVtep(nl, p.spec), plan.vxlan);
    r.added.push(...o.added);
    r.removed.push(...o.removed);
  }
  const d = syncDirectRoutes(nl, underlay, p.network, plan.direct);
  r.added.push(...d.added);
  r.removed.push(...d.removed);
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

/** The underlay link and the node's address on it. */
export function resolveUnderlay(nl: Netlink, c: ClusterNetConf): { link: LinkInfo; ip: string } {
  let link: LinkInfo | null = null;
  if (c.iface) link = nl.getLink(c.iface);
  else if (c.publicIp) {
    const a = nl.listAddrs(undefined, 4).find((x) => x.address === c.publicIp);
    if (a) link = nl.getLink(a.index);
  } else {
    const name = defaultRouteInterface(nl);
    if (name) link = nl.getLink(name);
  }
  if (!link) {
    const what = c.iface
      ? `"iface": "${c.iface}" does not exist`
      : c.publicIp
      ? `"publicIp": "${c.publicIp}" is on no link`
      : `no "iface" is given and there is no default route`;
    throw new CniError(
      Code.InvalidConfig,
      `Cannot find the underlay of the cluster network: ${what}`,
    );
  }
  const ip = c.publicIp ?? nl.listAddrs(link.index, 4).find((a) => a.scope === 0)?.address;
  if (!ip) {
    throw new CniError(
      Code.InvalidConfig,
      `Cannot find the underlay address: "${link.name}" has no IPv4 address; set "publicIp"`,
    );
  }
  return { link, ip };
}

/** The attributes the node publishes. */
export async function nodeAttrs(
  c: ClusterNetConf,
  publicIp: string,
  vni: number,
  backendType: Backend["type"] = "vxlan",
) {
  const attrs: NodeAttrs = {
    node: c.node,
    publicIp,
    vtepMac: await stableMac(c.node, vni),
    vni,
    backendType,
  };
  return attrs;
}

/**
 * Joins (or re-joins) the node; see the module doc.
 *
 * @param prev the node's last state (the subnet to ask for again)
 * @throws {CniError} 11 when etcd is unreachable, 103 when no subnet is free, 7 for a bad
 *   conf or config, 101 for a kernel failure
 */
export async function joinOnce(
  etcd: EtcdClient,
  c: ClusterNetConf,
  nl: Netlink,
  prev?: NodeState,
  o: { podCidr?: string } = {},
): Promise<JoinResult> {
  const { link, ip } = resolveUnderlay(nl, c);
  const seed = c.network
    ? {
      network: c.network,
      subnetLen: c.subnetLen,
      vni: c.vni,
      port: c.port,
      backend: c.backend,
      directRouting: c.directRouting,
    }
    : undefined;
  const view = await readView(etcd, c.prefix, seed);
  const backend = view.config.backend;
  const vni = backend.vni;
  const attrs = await nodeAttrs(c, ip, vni, backend.type);
  const got = await acquireSubnet(etcd, c.prefix, attrs, {
    ttlSec: c.leaseTtlSec,
    previous: prev?.subnet,
    fixed: o.podCidr,
    view,
  });
  const subnet = got.lease.subnetText;
  // host-gw has no VTEP and no encapsulation: the pods get the underlay's MTU.
  const spec: VtepSpec | undefined = backend.type === "host-gw" ? undefined : {
    name: c.vtepName!,
    vni,
    port: backend.port,
    underlay: link,
    local: ip,
    mac: attrs.vtepMac,
    address: vtepAddress(subnet),
    mtu: overlayMtu(link.mtu, c.mtu),
  };
  const mtu = spec?.mtu ?? hostGwMtu(link.mtu, c.mtu);
  const peers: PeerContext = {
    node: c.node,
    subnet,
    backend,
    network: view.config.network,
    underlay: link,
    spec,
  };
  const leases = withOwn(got.view.leases, got.lease);
  const report = programPeers(nl, peers, leases);
  const network = formatCidr(view.config.network.network, view.config.network.prefix);
  if (c.ipMasq) await ensureMasq(network, subnet);
  const state: NodeState = {
    node: c.node,
    network,
    subnet,
    publicIp: ip,
    backend: backend.type,
    vtepName: spec?.name ?? "",
    vtepMac: spec?.mac ?? "",
    vni,
    port: backend.port,
    mtu,
    ipMasq: c.ipMasq,
    leaseId: got.leaseId,
    updatedAt: Date.now(),
  };
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
