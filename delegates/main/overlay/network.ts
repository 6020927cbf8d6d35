/**
 * The cluster network's shared config and its subnet leases as flannel keeps them in etcd
 * (flannel-io/flannel pkg/subnet, Documentation/reservations.md), so that podplex nodes and
 * flanneld nodes read one layout:
 *
 * - `<prefix>/config`: `{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan",
 *   "VNI":1,"Port":8472}}` (`SubnetMin`/`SubnetMax` optional). As in flannel, the first subnet
 *   of the network is never handed out (its network address is the cluster network's).
 * - `<prefix>/subnets/10.244.1.0-24`: one key per leased subnet, attached to the node's etcd
 *   lease (TTL), value `{"PublicIP":"10.0.0.5","PublicIPv6":null,"BackendType":"vxlan",
 *   "BackendData":{"VNI":1,"VtepMAC":"0a:58:..."},"PodplexNode":"node-1"}`. `PodplexNode` is
 *   podplex's own (flannel ignores unknown fields): a podplex node finds its lease by its
 *   name, a flanneld one by its PublicIP.
 *
 * Backends: `vxlan` (with `DirectRouting`: peers on the node's own underlay subnet are routed
 * to directly, the others over VXLAN) and `host-gw` (a route per peer via its PublicIP, no
 * encapsulation). A dual-stack flanneld key (`10.244.1.0-24&fd00:10:244:1::-64`, flannel's
 * MakeSubnetKey) is read as its IPv4 subnet. IPv4 only otherwise: a config with `EnableIPv6`
 * is refused.
 *
 * @module
 */
import { CniError, Code } from "../../../conf/errors.ts";
import {
  addIp,
  type Cidr,
  compareIp,
  contains,
  formatCidr,
  formatIp,
  type IP,
  lastAddress,
  networkOf,
  overlaps,
  tryParseCidr,
  tryParseIp,
} from "../../../conf/ip.ts";
import { isObject } from "../../../conf/json.ts";
import type { KeyValue } from "../../../clients/etcd/client.ts";

/** The default etcd prefix: flannel's. */
export const DEFAULT_PREFIX = "/coreos.com/network";

/** The UDP port of flannel's VXLAN backend (the Linux default; IANA's is 4789). */
export const FLANNEL_VXLAN_PORT = 8472;

/** The cluster network every node agrees on. */
export interface NetworkConfig {
  network: Cidr;
  subnetLen: number;
  /** The network addresses of the first and last subnet that may be leased. */
  subnetMin: IP;
  subnetMax: IP;
  backend: Backend;
}

/** The backends podplex serves, by flannel's `Backend.Type` names. */
export type BackendType = "vxlan" | "host-gw";

/** The config's `Backend`. */
export interface Backend {
  type: BackendType;
  vni: number;
  port: number;
  /** vxlan only: peers on the node's underlay subnet get a route, not VXLAN. */
  directRouting: boolean;
}

/** One subnet lease as read from etcd. */
export interface SubnetLease {
  /** The etcd key. */
  key: string;
  subnet: Cidr;
  /** `10.244.1.0/24`. */
  subnetText: string;
  /** The node's underlay address (the VXLAN packets' destination, host-gw's next hop). */
  publicIp: string;
  /** The IPv6 subnet of a dual-stack flanneld key (`fd00:10:244:1::/64`), when there is one. */
  ipv6SubnetText?: string;
  /** `PublicIPv6`, when set. */
  publicIpv6?: string;
  backendType: string;
  vni?: number;
  /** The node's VTEP MAC (its VXLAN device's address). */
  vtepMac?: string;
  /** The podplex node name (absent for a flanneld node). */
  node?: string;
  /** The etcd lease the key is attached to ("0": a reservation without TTL). */
  leaseId: string;
  modRevision: number;
}

/** What a node publishes in its lease. */
export interface NodeAttrs {
  node: string;
  publicIp: string;
  vtepMac: string;
  vni: number;
  /** What `BackendType` the lease says (default vxlan). */
  backendType?: BackendType;
}

const bad = (msg: string) => new CniError(Code.InvalidConfig, msg);

/** The config key under `prefix`. */
export function configKey(prefix: string): string {
  return `${prefix}/config`;
}

/** The key prefix of the subnet leases. */
export function subnetsPrefix(prefix: string): string {
  return `${prefix}/subnets/`;
}

/** The key of a subnet's lease: `<prefix>/subnets/10.244.1.0-24`. */
export function subnetKey(prefix: string, subnet: Cidr): string {
  return `${subnetsPrefix(prefix)}${formatIp(subnet.network)}-${subnet.prefix}`;
}

/**
 * Checks a config and fills flannel's defaults (SubnetLen 24 when the network is /22 or
 * larger, else network + 2; SubnetMin the second subnet, SubnetMax the last).
 *
 * @param raw the parsed JSON
 * @param where names the config in messages ("etcd key /coreos.com/network/config")
 * @throws {CniError} code 7 naming the field and value
 */
export function parseNetworkConfig(raw: unknown, where: string): NetworkConfig {
  if (!isObject(raw)) throw bad(`Invalid network config in ${where}: not a JSON object`);
  if (raw.EnableIPv6 === true) {
    throw bad(`Invalid "EnableIPv6" in ${where}: podplex's cluster network is IPv4 only`);
  }
  const text = typeof raw.Network === "string" ? raw.Network : "";
  const network = tryParseCidr(text);
  if (!network || network.family !== 4) {
    throw bad(`Invalid "Network" in ${where}: ${JSON.stringify(raw.Network)} is not an IPv4 CIDR`);
  }
  const net = { ...network, ip: network.network };
  const subnetLen = subnetLenOf(raw.SubnetLen, net, where);
  const size = 1n << BigInt(32 - subnetLen);
  const subnetMin = boundOf(raw.SubnetMin, "SubnetMin", net, subnetLen, where) ??
    addIp(net.network, size);
  const subnetMax = boundOf(raw.SubnetMax, "SubnetMax", net, subnetLen, where) ??
    addIp(lastAddress(net), 1n - size);
  if (compareIp(subnetMin, subnetMax) > 0) {
    throw bad(`Invalid "SubnetMin" in ${where}: ${formatIp(subnetMin)} is above SubnetMax`);
  }
  return { network: net, subnetLen, subnetMin, subnetMax, backend: backendOf(raw.Backend, where) };
}

function subnetLenOf(v: unknown, net: Cidr, where: string): number {
  if (v === undefined || v === null || v === 0) {
    if (net.prefix > 28) throw bad(`Invalid "Network" in ${where}: a /${net.prefix} is too small`);
    return net.prefix <= 22 ? 24 : net.prefix + 2;
  }
  if (typeof v !== "number" || !Number.isInteger(v) || v > 30 || v < net.prefix + 2) {
    throw bad(
      `Invalid "SubnetLen" in ${where}: ${JSON.stringify(v)} must be ${net.prefix + 2} to 30 ` +
        `(at least four subnets of the /${net.prefix})`,
    );
  }
  return v;
}

function boundOf(v: unknown, key: string, net: Cidr, len: number, where: string) {
  if (v === undefined || v === null || v === "") return undefined;
  const ip = typeof v === "string" ? tryParseIp(v) : undefined;
  if (!ip || ip.family !== 4 || !contains(net, ip)) {
    throw bad(
      `Invalid "${key}" in ${where}: ${JSON.stringify(v)} is not an address of the Network`,
    );
  }
  if (networkOf(ip, len).value !== ip.value) {
    throw bad(`Invalid "${key}" in ${where}: "${v}" is not on a /${len} boundary`);
  }
  return ip;
}

function backendOf(v: unknown, where: string): Backend {
  const b = isObject(v) ? v : {};
  const type = typeof b.Type === "string" ? b.Type : "vxlan";
  if (type !== "vxlan" && type !== "host-gw") {
    throw bad(
      `Invalid "Backend.Type" in ${where}: "${type}" (podplex serves "vxlan" and "host-gw")`,
    );
  }
  const dr = b.DirectRouting ?? false;
  if (typeof dr !== "boolean") {
    throw bad(`Invalid "Backend.DirectRouting" in ${where}: ${JSON.stringify(dr)} is not a bool`);
  }
  const vni = b.VNI ?? 1;
  if (typeof vni !== "number" || !Number.isInteger(vni) || vni < 1 || vni > 0xffffff) {
    throw bad(`Invalid "Backend.VNI" in ${where}: ${JSON.stringify(vni)} is not 1-16777215`);
  }
  const port = b.Port === undefined || b.Port === 0 ? FLANNEL_VXLAN_PORT : b.Port;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw bad(`Invalid "Backend.Port" in ${where}: ${JSON.stringify(port)} is not a UDP port`);
  }
  return { type, vni, port, directRouting: type === "vxlan" && dr };
}

/** The config JSON a node writes when etcd has none (flannel's field names). */
export function networkConfigJson(c: {
  network: string;
  subnetLen?: number;
  vni: number;
  port: number;
  backend?: BackendType;
  directRouting?: boolean;
}): string {
  const out: Record<string, unknown> = { Network: c.network };
  if (c.subnetLen) out.SubnetLen = c.subnetLen;
  out.Backend = c.backend === "host-gw" ? { Type: "host-gw" } : {
    Type: "vxlan",
    VNI: c.vni,
    Port: c.port,
    ...(c.directRouting ? { DirectRouting: true } : {}),
  };
  return JSON.stringify(out);
}

/** Whether a leased subnet fits the config (in the window, of the configured length). */
export function subnetFits(cfg: NetworkConfig, sn: Cidr): boolean {
  return sn.family === 4 && sn.prefix === cfg.subnetLen && contains(cfg.network, sn.network) &&
    compareIp(sn.network, cfg.subnetMin) >= 0 && compareIp(sn.network, cfg.subnetMax) <= 0;
}

/**
 * The first `limit` free subnets of the window, in order (flannel picks one of its first
 * 100 at random, so that racing nodes rarely pick the same).
 */
export function freeSubnets(cfg: NetworkConfig, taken: Cidr[], limit = 100): Cidr[] {
  const out: Cidr[] = [];
  const size = 1n << BigInt(32 - cfg.subnetLen);
  for (
    let ip = cfg.subnetMin;
    compareIp(ip, cfg.subnetMax) <= 0 && out.length < limit;
    ip = addIp(ip, size)
  ) {
    const sn = subnetOf(ip, cfg.subnetLen);
    if (!taken.some((t) => overlaps(t, sn))) out.push(sn);
  }
  return out;
}

/** The subnet `network/len` as a Cidr. */
export function subnetOf(network: IP, len: number): Cidr {
  return { ip: network, network, prefix: len, family: 4 };
}

/** flannel's MakeSubnetKey: `10.244.1.0-24`, dual stack `10.244.1.0-24&fd00:10:244:1::-64`. */
const KEY_RE = /\/subnets\/(\d{1,3}(?:\.\d{1,3}){3})-(\d{1,2})(?:&([0-9a-f:]+)-(\d{1,3}))?$/;

/** A lease from its etcd key and value; undefined for a key or value that is not one. */
export function parseLease(kv: KeyValue): SubnetLease | undefined {
  const m = KEY_RE.exec(kv.key);
  const sn = m ? tryParseCidr(`${m[1]}/${m[2]}`) : undefined;
  if (!sn || sn.network.value !== sn.ip.value) return undefined;
  let j: unknown;
  try {
    j = JSON.parse(kv.value);
  } catch {
    return undefined;
  }
  if (!isObject(j) || typeof j.PublicIP !== "string" || !tryParseIp(j.PublicIP)) return undefined;
  const lease: SubnetLease = {
    key: kv.key,
    subnet: sn,
    subnetText: formatCidr(sn.network, sn.prefix),
    publicIp: j.PublicIP,
    backendType: typeof j.BackendType === "string" ? j.BackendType : "",
    leaseId: kv.lease,
    modRevision: kv.modRevision,
  };
  if (m![3]) {
    const sn6 = tryParseCidr(`${m![3]}/${m![4]}`);
    if (!sn6 || sn6.family !== 6 || sn6.network.value !== sn6.ip.value) return undefined;
    lease.ipv6SubnetText = formatCidr(sn6.network, sn6.prefix);
  }
  if (typeof j.PublicIPv6 === "string" && tryParseIp(j.PublicIPv6)?.family === 6) {
    lease.publicIpv6 = j.PublicIPv6;
  }
  const data = isObject(j.BackendData) ? j.BackendData : {};
  if (typeof data.VNI === "number") lease.vni = data.VNI;
  if (typeof data.VtepMAC === "string") lease.vtepMac = data.VtepMAC.toLowerCase();
  if (typeof j.PodplexNode === "string" && j.PodplexNode) lease.node = j.PodplexNode;
  return lease;
}

/** The value a node puts in its lease. */
export function leaseValue(a: NodeAttrs): string {
  // host-gw publishes no BackendData (flannel's route backends marshal none either).
  return JSON.stringify({
    PublicIP: a.publicIp,
    PublicIPv6: null,
    BackendType: a.backendType ?? "vxlan",
    ...(a.backendType === "host-gw" ? {} : { BackendData: { VNI: a.vni, VtepMAC: a.vtepMac } }),
    PodplexNode: a.node,
  });
}

/** Whether a lease already says what `a` would publish. */
export function sameAttrs(l: SubnetLease, a: NodeAttrs): boolean {
  const type = a.backendType ?? "vxlan";
  if (l.publicIp !== a.publicIp || l.node !== a.node || l.backendType !== type) return false;
  return type === "host-gw" || (l.vtepMac === a.vtepMac.toLowerCase() && l.vni === a.vni);
}
