/**
 * One subnet lease as flannel keeps it in etcd (flannel-io/flannel pkg/subnet: MakeSubnetKey,
 * LeaseAttrs), so that podplex nodes and flanneld nodes read each other's keys:
 *
 * - key `<prefix>/subnets/10.244.1.0-24` (IPv4), `…/10.244.1.0-24&fd00:10:244:1::-64` (dual
 *   stack), `…/0.0.0.0-0&fd00:10:244:1::-64` (IPv6 only): one lease holds both families;
 * - value `{"PublicIP":"10.0.0.5","PublicIPv6":"fd00:232::5","BackendType":"vxlan",
 *   "BackendData":{"VNI":1,"VtepMAC":"…"},"BackendV6Data":{"VNI":1,"VtepMAC":"…"},
 *   "PodplexNode":"node-1"}`, in flannel's field order: `PublicIP` always there (`0.0.0.0`
 *   on an IPv6-only node), `PublicIPv6` null when the node has no IPv6 underlay,
 *   `BackendData` / `BackendV6Data` (the v4 and v6 VTEP) only when there is one.
 *   `PodplexNode` is podplex's own (flannel ignores unknown fields): a podplex node finds its
 *   lease by its name, a flanneld one by its PublicIP.
 *
 * @module
 */
import { type Cidr, formatCidr, formatIp, tryParseCidr, tryParseIp } from "../../../conf/ip.ts";
import { isObject } from "../../../conf/json.ts";
import type { KeyValue } from "../../../clients/etcd/client.ts";

/** An address family. */
export type Family = 4 | 6;

/** The backends podplex serves, by flannel's `Backend.Type` names. */
export type BackendType = "vxlan" | "host-gw";

/** One subnet lease as read from etcd. */
export interface SubnetLease {
  /** The etcd key. */
  key: string;
  /** The IPv4 subnet (absent in an IPv6-only lease). */
  subnet?: Cidr;
  /** `10.244.1.0/24`. */
  subnetText?: string;
  /** The IPv6 subnet (absent in an IPv4-only lease). */
  subnet6?: Cidr;
  /** `fd00:10:244:1::/64`. */
  subnet6Text?: string;
  /** `PublicIP`: the IPv4 underlay address (`0.0.0.0` on an IPv6-only node). */
  publicIp: string;
  /** `PublicIPv6`, when set. */
  publicIpv6?: string;
  backendType: string;
  /** `BackendData`: the IPv4 VTEP. */
  vni?: number;
  vtepMac?: string;
  /** `BackendV6Data`: the IPv6 VTEP. */
  vni6?: number;
  vtepMac6?: string;
  /** The podplex node name (absent for a flanneld node). */
  node?: string;
  /** The etcd lease the key is attached to ("0": a reservation without TTL). */
  leaseId: string;
  modRevision: number;
}

/** What a node publishes in its lease. */
export interface NodeAttrs {
  node: string;
  /** The IPv4 underlay address ("0.0.0.0" when the node has none). */
  publicIp: string;
  /** The IPv6 underlay address, when the network is IPv6 and the node has one. */
  publicIpv6?: string;
  /** The v4 VTEP's MAC (published when the network is IPv4 and the backend vxlan). */
  vtepMac: string;
  /** The v6 VTEP's MAC (published when the network is IPv6 and the backend vxlan). */
  vtepMac6?: string;
  vni: number;
  /** What `BackendType` the lease says (default vxlan). */
  backendType?: BackendType;
  /** Which families the lease holds (default: IPv4 only). */
  families?: Family[];
}

/** One family of a lease: its subnet and how the node is reached in that family. */
export interface FamilyLease {
  subnet: Cidr;
  /** `10.244.1.0/24`, `fd00:10:244:1::/64`. */
  subnetText: string;
  /** The node's underlay address of that family (undefined when it published none). */
  publicIp?: string;
  /** The VTEP of that family (vxlan). */
  vtepMac?: string;
  vni?: number;
}

/** The `family` part of a lease; undefined when the lease has no subnet of that family. */
export function leaseFamily(l: SubnetLease, family: Family): FamilyLease | undefined {
  if (family === 4) {
    if (!l.subnet) return undefined;
    const publicIp = l.publicIp === "0.0.0.0" ? undefined : l.publicIp;
    return {
      subnet: l.subnet,
      subnetText: l.subnetText!,
      publicIp,
      vtepMac: l.vtepMac,
      vni: l.vni,
    };
  }
  if (!l.subnet6) return undefined;
  return {
    subnet: l.subnet6,
    subnetText: l.subnet6Text!,
    publicIp: l.publicIpv6,
    vtepMac: l.vtepMac6,
    vni: l.vni6,
  };
}

/** How a lease is named in messages and tables: its subnets, `v4 + v6`. */
export function leaseLabel(l: SubnetLease): string {
  return [l.subnetText, l.subnet6Text].filter(Boolean).join(" + ");
}

/** The key prefix of the subnet leases. */
export function subnetsPrefix(prefix: string): string {
  return `${prefix}/subnets/`;
}

/**
 * flannel's MakeSubnetKey under `prefix`: `10.244.1.0-24`, `10.244.1.0-24&fd00:10:244:1::-64`,
 * `0.0.0.0-0&fd00:10:244:1::-64` (no IPv4 subnet).
 */
export function subnetKey(prefix: string, subnet?: Cidr, subnet6?: Cidr): string {
  const v4 = subnet ? `${formatIp(subnet.network)}-${subnet.prefix}` : "0.0.0.0-0";
  const v6 = subnet6 ? `&${formatIp(subnet6.network)}-${subnet6.prefix}` : "";
  return `${subnetsPrefix(prefix)}${v4}${v6}`;
}

/** flannel's subnet key regex (`subnetRegex` in pkg/subnet), anchored on `/subnets/`. */
const KEY_RE = /\/subnets\/(\d{1,3}(?:\.\d{1,3}){3})-(\d{1,2})(?:&([0-9a-f:]+)-(\d{1,3}))?$/;

/** A network address of `family` from key text; undefined when it is not one. */
function keyNet(ip: string, len: string, family: Family): Cidr | undefined {
  const c = tryParseCidr(`${ip}/${len}`);
  return c && c.family === family && c.network.value === c.ip.value ? c : undefined;
}

/** `{VNI, VtepMAC}` of a BackendData / BackendV6Data. */
function vtepOf(v: unknown): { vni?: number; mac?: string } {
  const d = isObject(v) ? v : {};
  return {
    vni: typeof d.VNI === "number" ? d.VNI : undefined,
    mac: typeof d.VtepMAC === "string" ? d.VtepMAC.toLowerCase() : undefined,
  };
}

/** A lease from its etcd key and value; undefined for a key or value that is not one. */
export function parseLease(kv: KeyValue): SubnetLease | undefined {
  const m = KEY_RE.exec(kv.key);
  if (!m) return undefined;
  const v4only = m[1] === "0.0.0.0" && m[2] === "0";
  const sn = v4only ? undefined : keyNet(m[1], m[2], 4);
  const sn6 = m[3] ? keyNet(m[3], m[4], 6) : undefined;
  if ((!v4only && !sn) || (m[3] && !sn6) || (!sn && !sn6)) return undefined;
  let j: unknown;
  try {
    j = JSON.parse(kv.value);
  } catch {
    return undefined;
  }
  if (!isObject(j) || typeof j.PublicIP !== "string" || !tryParseIp(j.PublicIP)) return undefined;
  const lease: SubnetLease = {
    key: kv.key,
    publicIp: j.PublicIP,
    backendType: typeof j.BackendType === "string" ? j.BackendType : "",
    leaseId: kv.lease,
    modRevision: kv.modRevision,
  };
  if (sn) Object.assign(lease, { subnet: sn, subnetText: formatCidr(sn.network, sn.prefix) });
  if (sn6) Object.assign(lease, { subnet6: sn6, subnet6Text: formatCidr(sn6.network, sn6.prefix) });
  if (typeof j.PublicIPv6 === "string" && tryParseIp(j.PublicIPv6)?.family === 6) {
    lease.publicIpv6 = j.PublicIPv6;
  }
  const v4 = vtepOf(j.BackendData);
  if (v4.vni !== undefined) lease.vni = v4.vni;
  if (v4.mac) lease.vtepMac = v4.mac;
  const v6 = vtepOf(j.BackendV6Data);
  if (v6.vni !== undefined) lease.vni6 = v6.vni;
  if (v6.mac) lease.vtepMac6 = v6.mac;
  if (typeof j.PodplexNode === "string" && j.PodplexNode) lease.node = j.PodplexNode;
  return lease;
}

const familiesOf = (a: NodeAttrs): Family[] => a.families ?? [4];

/** The value a node puts in its lease (flannel's LeaseAttrs, field order kept). */
export function leaseValue(a: NodeAttrs): string {
  const fams = familiesOf(a);
  const vxlan = (a.backendType ?? "vxlan") === "vxlan";
  const out: Record<string, unknown> = {
    PublicIP: fams.includes(4) ? a.publicIp : "0.0.0.0",
    PublicIPv6: fams.includes(6) && a.publicIpv6 ? a.publicIpv6 : null,
    BackendType: a.backendType ?? "vxlan",
  };
  // host-gw publishes no BackendData (flannel's route backends marshal none either).
  if (vxlan && fams.includes(4)) out.BackendData = { VNI: a.vni, VtepMAC: a.vtepMac };
  if (vxlan && fams.includes(6) && a.vtepMac6) {
    out.BackendV6Data = { VNI: a.vni, VtepMAC: a.vtepMac6 };
  }
  out.PodplexNode = a.node;
  return JSON.stringify(out);
}

/** Whether a lease already says what `a` would publish. */
export function sameAttrs(l: SubnetLease, a: NodeAttrs): boolean {
  const type = a.backendType ?? "vxlan";
  const fams = familiesOf(a);
  const want4 = fams.includes(4) ? a.publicIp : "0.0.0.0";
  const want6 = fams.includes(6) ? a.publicIpv6 : undefined;
  if (l.publicIp !== want4 || l.publicIpv6 !== want6) return false;
  if (l.node !== a.node || l.backendType !== type) return false;
  if (type === "host-gw") return true;
  const v4ok = !fams.includes(4) || (l.vtepMac === a.vtepMac.toLowerCase() && l.vni === a.vni);
  const v6ok = !fams.includes(6) ||
    (l.vtepMac6 === a.vtepMac6?.toLowerCase() && l.vni6 === (a.vtepMac6 ? a.vni : undefined));
  return v4ok && v6ok;
}
