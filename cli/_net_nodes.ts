/**
 * `podplex net nodes` and `podplex net leave`: the nodes of podplex's cluster network (their
 * subnet leases in etcd, VTEPs, when each lease was last renewed, whether this node's VTEP
 * has each one's entries), and this node leaving it.
 *
 * The cluster network conf is `--network FILE`, else the podplex conf's `clusterNetwork`
 * when its type is `podplex-cluster`.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { formatCidr } from "../conf/ip.ts";
import { resolveClusterNetwork } from "../meta/networks.ts";
import { Netlink } from "../ffi/mod.ts";
import { EtcdClient } from "../clients/etcd/client.ts";
import { clusterNetConfOf, loadClusterNetConf } from "../controllers/overlay/conf_file.ts";
import { type ClusterNetConf, etcdOptions } from "../delegates/main/overlay/conf.ts";
import { removeMasq } from "../delegates/main/overlay/masq.ts";
import {
  type Backend,
  familiesOf,
  leaseFamily,
  type NetworkConfig,
  rangeOf,
  type SubnetLease,
  type SubnetRange,
} from "../delegates/main/overlay/network.ts";
import { onSegment, planPeers, readDirectRoutes } from "../delegates/main/overlay/direct.ts";
import { resolveUnderlay } from "../delegates/main/overlay/join.ts";
import { agentAlive, readNodeState, stateFile } from "../delegates/main/overlay/node_state.ts";
import { readView } from "../delegates/main/overlay/subnets.ts";
import { readOverlay } from "../delegates/main/overlay/sync.ts";
import { loadStandaloneConfig, localResolver } from "./_config.ts";
import { UsageError } from "./_args.ts";
import { out, printJson, table } from "./_output.ts";

/** One node as `net nodes --json` prints it. */
export interface NodeView {
  node: string;
  /** The IPv4 subnet ("" when the lease has none). */
  subnet: string;
  /** The IPv6 subnet, when the lease has one. */
  subnet6?: string;
  publicIp: string;
  publicIpv6?: string;
  vtepMac: string;
  vtepMac6?: string;
  vni?: number;
  /** The etcd lease ("0": a reservation without TTL). */
  lease: string;
  /** Seconds left on the lease (-1: gone or a reservation). */
  ttl: number;
  /** Seconds since the lease was last renewed (undefined when unknown). */
  renewedAgo?: number;
  /** This node. */
  self: boolean;
  /** Whether this node has the node's entries (route, neighbour, FDB) of every family. */
  programmed?: boolean;
}

/** The cluster network conf: `--network FILE`, else the podplex conf's clusterNetwork. */
export async function clusterConf(network?: string, config?: string): Promise<ClusterNetConf> {
  if (network) return await loadClusterNetConf(network);
  const cfg = await loadStandaloneConfig(config);
  const net = await resolveClusterNetwork(
    cfg.conf,
    localResolver(cfg, cfg.conf.defaultNetworkNamespace),
  );
  if (!net) {
    throw new UsageError(
      `The podplex conf ${cfg.source} names no clusterNetwork; give --network FILE`,
    );
  }
  try {
    return clusterNetConfOf(net.confText, `the cluster network "${net.statusName}"`);
  } catch (err) {
    throw new UsageError(`${(err as Error).message}; give --network FILE`);
  }
}

/** Reads every lease with its TTL and what this node's kernel has for it. */
export async function listNodes(c: ClusterNetConf): Promise<{
  network: string;
  network6?: string;
  vni: number;
  backend: Backend;
  nodes: NodeView[];
}> {
  const etcd = new EtcdClient(await etcdOptions(c));
  try {
    const view = await readView(etcd, c.prefix);
    const here = programmedHere(c, view.leases, view.config);
    const nodes = await Promise.all(view.leases.map(async (l): Promise<NodeView> => {
      const v: NodeView = {
        node: l.node ?? `(flannel ${l.publicIpv6 ?? l.publicIp})`,
        subnet: l.subnetText ?? "",
        publicIp: l.publicIp,
        vtepMac: l.vtepMac ?? "",
        lease: l.leaseId,
        ttl: -1,
        self: l.node === c.node,
      };
      if (l.subnet6Text) v.subnet6 = l.subnet6Text;
      if (l.publicIpv6) v.publicIpv6 = l.publicIpv6;
      if (l.vtepMac6) v.vtepMac6 = l.vtepMac6;
      if (l.vni !== undefined || l.vni6 !== undefined) v.vni = l.vni ?? l.vni6;
      if (l.leaseId !== "0") {
        const j = await etcd.call("/v3/lease/timetolive", { ID: l.leaseId });
        v.ttl = Number(j.TTL ?? -1);
        const granted = Number(j.grantedTTL ?? 0);
        if (v.ttl >= 0 && granted > 0) v.renewedAgo = granted - v.ttl;
      }
      if (!v.self && here?.has(l.key)) v.programmed = here.get(l.key);
      return v;
    }));
    const text = (r?: SubnetRange) =>
      r ? formatCidr(r.network.network, r.network.prefix) : undefined;
    const b = view.config.backend;
    const out = { network: text(view.config.v4) ?? "", vni: b.vni, backend: b, nodes };
    const v6 = text(view.config.v6);
    return v6 ? { ...out, network6: v6 } : out;
  } finally {
    etcd.close();
  }
}

/**
 * Per lease this node should program, whether the kernel has it in every family: the VTEP's
 * route, neighbour and FDB entry (vxlan), or the underlay's route via the peer (host-gw,
 * DirectRouting). Undefined when this netns has neither the VTEPs nor the underlay.
 */
function programmedHere(
  c: ClusterNetConf,
  leases: SubnetLease[],
  cfg: NetworkConfig,
): Map<string, boolean> | undefined {
  using nl = Netlink.open();
  let underlay: number | undefined;
  try {
    underlay = resolveUnderlay(nl, c, []).link.index;
  } catch { /* not on a node */ }
  const backend = cfg.backend;
  const done = new Map<string, boolean>();
  let any = false;
  for (const family of familiesOf(cfg)) {
    const vtep = nl.getLink((family === 4 ? c.vtepName : c.vtep6Name) ?? "");
    if (backend.type === "host-gw" ? underlay === undefined : !vtep) continue;
    any = true;
    const same = (ip: string) => underlay !== undefined && onSegment(nl, underlay, ip);
    const plan = planPeers(leases, backend, { node: c.node }, same, family);
    const have = vtep
      ? readOverlay(nl, vtep.index, family)
      : { routes: [], neighbours: [], fdb: [] };
    const net = rangeOf(cfg, family)!.network;
    const direct = underlay === undefined ? [] : readDirectRoutes(nl, underlay, net);
    for (const l of leases) {
      const sn = leaseFamily(l, family)?.subnetText;
      const e = plan.vxlan.find((x) => x.subnet === sn);
      const d = plan.direct.find((x) => x.subnet === sn);
      let ok: boolean | undefined;
      if (e) {
        ok = have.routes.includes(`${e.subnet} via ${e.gw}`) &&
          have.neighbours.includes(`${e.gw} ${e.mac}`) &&
          have.fdb.includes(`${e.mac} dst ${e.publicIp}`);
      } else if (d) ok = direct.includes(`${d.subnet} via ${d.via}`);
      if (ok !== undefined) done.set(l.key, (done.get(l.key) ?? true) && ok);
    }
  }
  return any ? done : undefined;
}

/** Prints the nodes. */
export async function printNodes(c: ClusterNetConf, json: boolean): Promise<number> {
  const r = await listNodes(c);
  if (json) {
    printJson(r);
    return 0;
  }
  const both = (a?: string, b?: string) => [a, b].filter(Boolean).join(", ") || "-";
  const rows = r.nodes.map((n) => [
    n.node + (n.self ? " (this node)" : ""),
    both(n.subnet, n.subnet6),
    both(n.publicIp === "0.0.0.0" ? "" : n.publicIp, n.publicIpv6),
    both(n.vtepMac, n.vtepMac6),
    n.lease === "0" ? "reserved" : n.ttl < 0 ? "expired" : `${n.ttl}s`,
    n.renewedAgo === undefined ? "-" : `${n.renewedAgo}s ago`,
    n.self ? "-" : n.programmed === undefined ? "not here" : n.programmed ? "yes" : "MISSING",
  ]);
  const b = r.backend;
  const how = b.type === "host-gw"
    ? "host-gw"
    : `VXLAN VNI ${r.vni}${b.directRouting ? ", DirectRouting" : ""}`;
  out(`cluster network ${both(r.network, r.network6)}, ${how}, ${r.nodes.length} node(s)\n`);
  out(
    table(["NODE", "SUBNETS", "PUBLIC IPS", "VTEP MACS", "TTL", "RENEWED", "ENTRIES HERE"], rows),
  );
  return 0;
}

/**
 * This node leaves: its lease revoked (the other nodes' agents remove its entries), its VTEP
 * and masquerade rules removed, its state files deleted. Refused while its agent runs (the
 * agent would join again at once).
 *
 * @throws {CniError} code 11 while the agent runs
 */
export async function leave(c: ClusterNetConf): Promise<number> {
  if (await agentAlive(c.stateDir)) {
    throw new CniError(
      Code.TryAgainLater,
      `The node agent of "${c.name}" runs on this node: stop it (podplex serve) first, or it joins again`,
    );
  }
  const s = await readNodeState(c.stateDir);
  if (s?.leaseId && s.leaseId !== "0") {
    const etcd = new EtcdClient(await etcdOptions(c));
    try {
      await etcd.leaseRevoke(s.leaseId);
    } finally {
      etcd.close();
    }
  }
  {
    using nl = Netlink.open();
    // A host-gw node has no VTEP ("" in its state); its direct routes go with the peers'
    // leases (every agent drops the routes of a lease that is gone).
    nl.deleteLinkIfExists(s?.vtepName || c.vtepName!);
    const v6 = s?.vtep6Name || c.vtep6Name;
    if (v6) nl.deleteLinkIfExists(v6);
  }
  if (s?.ipMasq || c.ipMasq) await removeMasq();
  for (const f of [stateFile(c.stateDir), c.subnetFile]) await Deno.remove(f).catch(() => {});
  out(
    s
      ? `node "${s.node}" left: ${
        [s.subnet, s.subnet6].filter(Boolean).join(" + ")
      } released, VTEP ${[s.vtepName, s.vtep6Name].filter(Boolean).join(", ")} removed\n`
      : `node "${c.node}" holds nothing here; VTEP ${c.vtepName} removed if it existed\n`,
  );
  return 0;
}
