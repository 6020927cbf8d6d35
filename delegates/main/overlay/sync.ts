/**
 * Keeping a VTEP's entries exactly equal to the other nodes' leases, in flannel's L3 mode, one
 * family per VTEP (the v4 one `podplex.<VNI>`, the v6 one `podplex-v6.<VNI>`): per remote node
 *
 * - a route to its subnet via its subnet's network address, onlink, on the VTEP;
 * - a permanent neighbour entry: that address → the remote VTEP MAC;
 * - a permanent FDB entry: the remote VTEP MAC → the remote underlay address.
 *
 * {@linkcode syncOverlay} reads what the kernel has on the device and removes what no lease
 * asks for (routes first, so no packet is sent to a neighbour being removed), then adds what
 * is missing (neighbour and FDB before the route, so the kernel never resolves the gateway
 * itself). A lease whose MAC, address or subnet changed is one removal plus one addition.
 * Running it twice changes nothing the second time.
 *
 * @module
 */
import { formatCidr, formatIp, overlaps, tryParseCidr } from "../../../conf/ip.ts";
import type { LinkInfo, Netlink } from "../../../ffi/mod.ts";
import { kernelError } from "../../_shared/link_common.ts";
import { type Family, leaseFamily, type SubnetLease } from "./network.ts";

/** What one remote node needs on the VTEP. */
export interface OverlayEntry {
  /** `10.244.2.0/24`. */
  subnet: string;
  /** The subnet's network address (`10.244.2.0`), the route's onlink gateway. */
  gw: string;
  /** The remote VTEP MAC. */
  mac: string;
  /** The remote underlay address. */
  publicIp: string;
}

/** The kernel's entries on the VTEP, each as a canonical string (sorted). */
export interface OverlayState {
  /** `10.244.2.0/24 via 10.244.2.0`. */
  routes: string[];
  /** `10.244.2.0 0a:58:...` (permanent entries only). */
  neighbours: string[];
  /** `0a:58:... dst 10.0.0.12`. */
  fdb: string[];
}

/** What a sync changed, by subnet. */
export interface SyncReport {
  added: string[];
  removed: string[];
}

/**
 * The entries the other nodes' leases ask for in `family` (default IPv4): VXLAN leases with a
 * subnet, a VTEP MAC of `vni` and an underlay address of that family, not `self`'s, not
 * overlapping `ownSubnet` (the node's subnet of that family).
 */
export function desiredEntries(
  leases: SubnetLease[],
  vni: number,
  self: { node: string; ownSubnet?: string },
  family: Family = 4,
): OverlayEntry[] {
  const own = self.ownSubnet ? tryParseCidr(self.ownSubnet) : undefined;
  const out: OverlayEntry[] = [];
  for (const l of leases) {
    const p = leaseFamily(l, family);
    if (l.backendType !== "vxlan" || l.node === self.node || !p?.vtepMac || !p.publicIp) continue;
    if ((p.vni ?? 1) !== vni || (own && overlaps(own, p.subnet))) continue;
    out.push({
      subnet: p.subnetText,
      gw: formatIp(p.subnet.network),
      mac: p.vtepMac,
      publicIp: p.publicIp,
    });
  }
  return out.sort((a, b) => a.subnet.localeCompare(b.subnet));
}

/** The canonical strings of a set of entries (what {@linkcode readOverlay} should then read). */
export function expectedState(want: OverlayEntry[]): OverlayState {
  return {
    routes: want.map((e) => `${e.subnet} via ${e.gw}`).sort(),
    neighbours: want.map((e) => `${e.gw} ${e.mac}`).sort(),
    fdb: want.map((e) => `${e.mac} dst ${e.publicIp}`).sort(),
  };
}

/** Reads the VTEP's routes (main table, `family`), permanent neighbours and FDB entries. */
export function readOverlay(nl: Netlink, vtep: number, family: Family = 4): OverlayState {
  const routes = nl.listRoutes({ family, dev: vtep })
    .filter((r) => r.gw !== undefined)
    .map((r) => `${r.dst} via ${r.gw}`);
  const neighbours = nl.listNeigh({ dev: vtep, family }).filter((n) => n.permanent && n.mac)
    .map((n) => `${n.ip} ${n.mac}`);
  const fdb = nl.listFdb(vtep).filter((e) => e.dst).map((e) => `${e.mac} dst ${e.dst}`);
  return { routes: routes.sort(), neighbours: neighbours.sort(), fdb: fdb.sort() };
}

/**
 * Makes the VTEP's entries exactly `want`; see the module doc.
 *
 * @throws {CniError} code 101 naming the entry that could not be changed
 */
export function syncOverlay(
  nl: Netlink,
  vtep: LinkInfo,
  want: OverlayEntry[],
  family: Family = 4,
): SyncReport {
  const dev = vtep.index;
  const wantRoutes = new Map(want.map((e) => [`${e.subnet} via ${e.gw}`, e]));
  const wantNeigh = new Map(want.map((e) => [`${e.gw} ${e.mac}`, e]));
  const wantFdb = new Map(want.map((e) => [`${e.mac} dst ${e.publicIp}`, e]));
  const report: SyncReport = { added: [], removed: [] };
  const step = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (err) {
      throw kernelError(`Cannot ${what} on the VTEP "${vtep.name}"`, err);
    }
  };
  // Removals: routes, then neighbours, then FDB entries.
  for (const r of nl.listRoutes({ family, dev })) {
    const key = `${r.dst} via ${r.gw}`;
    if (r.gw === undefined || wantRoutes.has(key)) continue;
    step(`remove the route ${key}`, () => nl.delRoute({ dst: r.dst, gw: r.gw, dev }));
    report.removed.push(r.dst);
  }
  const gateways = new Set(want.map((e) => e.gw));
  for (const n of nl.listNeigh({ dev, family })) {
    // A kernel-made entry (incomplete, failed) is left to age out unless it is in the way.
    if (n.permanent ? wantNeigh.has(`${n.ip} ${n.mac}`) : !gateways.has(n.ip)) continue;
    step(`remove the neighbour ${n.ip}`, () => nl.delNeigh({ dev, ip: n.ip }));
  }
  const haveFdb = new Set<string>();
  for (const f of nl.listFdb(dev)) {
    if (!f.dst) continue;
    const key = `${f.mac} dst ${f.dst}`;
    if (wantFdb.has(key)) haveFdb.add(key);
    else step(`remove the FDB entry ${key}`, () => nl.delFdb({ dev, mac: f.mac, dst: f.dst }));
  }
  // Additions: neighbour and FDB first, the route last.
  const haveNeigh = new Set(
    nl.listNeigh({ dev, family }).filter((n) => n.permanent).map((n) => `${n.ip} ${n.mac}`),
  );
  const haveRoutes = new Set(nl.listRoutes({ family, dev }).map((r) => `${r.dst} via ${r.gw}`));
  for (const e of want) {
    const nk = `${e.gw} ${e.mac}`;
    if (!haveNeigh.has(nk)) {
      step(`add the neighbour ${nk}`, () => nl.addNeigh({ dev, ip: e.gw, mac: e.mac }));
    }
    const fk = `${e.mac} dst ${e.publicIp}`;
    if (!haveFdb.has(fk)) {
      step(
        `add the FDB entry ${fk}`,
        () => nl.addFdb({ dev, mac: e.mac, dst: e.publicIp, self: true, permanent: true }),
      );
    }
    const rk = `${e.subnet} via ${e.gw}`;
    if (!haveRoutes.has(rk)) {
      step(
        `add the route ${rk}`,
        () => nl.addRoute({ dst: e.subnet, gw: e.gw, dev, onlink: true, scope: 0 }),
      );
      report.added.push(e.subnet);
    }
  }
  return report;
}

/**
 * `10.244.1.0/32` for the subnet `10.244.1.0/24` (`fd00:10:244:1::/128` for
 * `fd00:10:244:1::/64`): the VTEP's own address.
 */
export function vtepAddress(subnet: string): string {
  const c = tryParseCidr(subnet)!;
  return formatCidr(c.network, c.family === 4 ? 32 : 128);
}
