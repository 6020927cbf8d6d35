/**
 * Routes to peers without encapsulation, as flannel's `host-gw` backend and its vxlan
 * `DirectRouting` do: per peer a route to its subnet via its PublicIP on the underlay (its
 * IPv6 subnet via its PublicIPv6). That only works when the address is on the underlay's own
 * subnet (one L2 segment: the kernel must resolve it by ARP / NDP), so {@linkcode planPeers} refuses (host-gw) or sends over VXLAN
 * (DirectRouting) a peer that is not.
 *
 * {@linkcode syncDirectRoutes} owns the underlay's routes with a gateway whose destination is
 * inside the cluster network: it removes those no peer asks for and adds the missing ones;
 * run twice it changes nothing the second time.
 *
 * @module
 */
import { type Cidr, contains, networkOf, tryParseCidr, tryParseIp } from "../../../conf/ip.ts";
import type { LinkInfo, Netlink } from "../../../ffi/mod.ts";
import { kernelError } from "../../_shared/link_common.ts";
import { type Backend, type Family, leaseFamily, type SubnetLease } from "./network.ts";
import { desiredEntries, type OverlayEntry, type SyncReport } from "./sync.ts";

/** A route to a peer's subnet via its underlay address. */
export interface DirectRoute {
  /** `10.244.2.0/24`. */
  subnet: string;
  /** The peer's PublicIP. */
  via: string;
}

/** Who gets what: VXLAN entries, direct routes, and the peers refused (one message each). */
export interface PeerPlan {
  vxlan: OverlayEntry[];
  direct: DirectRoute[];
  refused: string[];
}

/** Whether `ip` is on one of `link`'s subnets of its family (reachable without a router). */
export function onSegment(nl: Netlink, link: number, ip: string): boolean {
  const a = tryParseIp(ip);
  if (!a) return false;
  return nl.listAddrs(link, a.family).some((x) => {
    const net = tryParseCidr(`${x.address}/${x.prefixLen}`);
    return !!net && contains({ ...net, ip: networkOf(net.ip, net.prefix) }, a);
  });
}

/**
 * Splits the other nodes' leases by how they are reached in `family` under `backend`:
 * host-gw peers by route via their underlay address of that family (a peer off the segment,
 * or without such an address, is refused), vxlan peers over VXLAN, or by route when
 * `DirectRouting` is on and they share the segment. A peer without a subnet of `family`
 * while the config leases it is refused too (a flanneld node of one family in a dual-stack
 * cluster).
 */
export function planPeers(
  leases: SubnetLease[],
  backend: Backend,
  self: { node: string; ownSubnet?: string },
  same: (ip: string) => boolean,
  family: Family = 4,
): PeerPlan {
  const plan: PeerPlan = { vxlan: [], direct: [], refused: [] };
  const own = self.ownSubnet ? tryParseCidr(self.ownSubnet) : undefined;
  const name = (l: SubnetLease) => `node "${l.node ?? l.publicIpv6 ?? l.publicIp}"`;
  for (const l of leases) {
    if (l.node === self.node || l.backendType !== backend.type) continue;
    const p = leaseFamily(l, family);
    if (!p) {
      plan.refused.push(`${name(l)} leases no IPv${family} subnet, and the network asks for one`);
    } else if (!p.publicIp) {
      plan.refused.push(`${name(l)} publishes no IPv${family} PublicIP for ${p.subnetText}`);
    } else if (backend.type === "vxlan" && !p.vtepMac) {
      const field = family === 4 ? "BackendData" : "BackendV6Data";
      plan.refused.push(`${name(l)} publishes no ${field} (VTEP) for ${p.subnetText}`);
    }
  }
  if (backend.type === "host-gw") {
    for (const l of leases) {
      const p = leaseFamily(l, family);
      if (l.backendType !== "host-gw" || l.node === self.node || !p?.publicIp) continue;
      if (own && own.network.value === p.subnet.network.value) continue;
      if (same(p.publicIp)) plan.direct.push({ subnet: p.subnetText, via: p.publicIp });
      else {
        plan.refused.push(
          `host-gw cannot reach ${p.subnetText} of ${name(l)}: its ` +
            `PublicIP ${p.publicIp} is not on this node's underlay segment`,
        );
      }
    }
  } else {
    for (const e of desiredEntries(leases, backend.vni, self, family)) {
      if (backend.directRouting && same(e.publicIp)) {
        plan.direct.push({ subnet: e.subnet, via: e.publicIp });
      } else plan.vxlan.push(e);
    }
  }
  plan.direct.sort((a, b) => a.subnet.localeCompare(b.subnet));
  return plan;
}

/** The underlay's direct routes into `network`, as `subnet via ip` (sorted). */
export function readDirectRoutes(nl: Netlink, underlay: number, network: Cidr): string[] {
  return nl.listRoutes({ family: network.family, dev: underlay })
    .filter((r) => r.gw !== undefined && inside(network, r.dst))
    .map((r) => `${r.dst} via ${r.gw}`).sort();
}

function inside(network: Cidr, dst: string): boolean {
  const c = tryParseCidr(dst);
  return !!c && c.prefix >= network.prefix && contains(network, c.network);
}

/**
 * Makes the underlay's routes into `network` exactly `want`; see the module doc.
 *
 * @throws {CniError} code 101 naming the route that could not be changed
 */
export function syncDirectRoutes(
  nl: Netlink,
  underlay: LinkInfo,
  network: Cidr,
  want: DirectRoute[],
): SyncReport {
  const dev = underlay.index;
  const wanted = new Set(want.map((r) => `${r.subnet} via ${r.via}`));
  const report: SyncReport = { added: [], removed: [] };
  const step = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (err) {
      throw kernelError(`Cannot ${what} on the underlay "${underlay.name}"`, err);
    }
  };
  const have = new Set<string>();
  for (const r of nl.listRoutes({ family: network.family, dev })) {
    if (r.gw === undefined || !inside(network, r.dst)) continue;
    const key = `${r.dst} via ${r.gw}`;
    if (wanted.has(key)) have.add(key);
    else {
      step(`remove the route ${key}`, () => nl.delRoute({ dst: r.dst, gw: r.gw, dev }));
      report.removed.push(r.dst);
    }
  }
  for (const r of want) {
    const key = `${r.subnet} via ${r.via}`;
    if (have.has(key)) continue;
    step(`add the route ${key}`, () => nl.addRoute({ dst: r.subnet, gw: r.via, dev }));
    report.added.push(r.subnet);
  }
  return report;
}
