/**
 * The cluster network's shared config as flannel keeps it in etcd (flannel-io/flannel
 * pkg/subnet, Documentation/configuration.md), so that podplex nodes and flanneld nodes read
 * one layout. `<prefix>/config`:
 *
 * ```json
 * {"Network":"10.244.0.0/16","SubnetLen":24,
 *  "EnableIPv6":true,"IPv6Network":"fd00:10:244::/56","IPv6SubnetLen":64,
 *  "Backend":{"Type":"vxlan","VNI":1,"Port":8472}}
 * ```
 *
 * `EnableIPv4` (default true) and `EnableIPv6` (default false) say which families are
 * leased; `SubnetMin`/`SubnetMax` and `IPv6SubnetMin`/`IPv6SubnetMax` are optional. As in
 * flannel, the first subnet of a network is never handed out (its network address is the
 * cluster network's). The leases themselves are `lease.ts`'s (re-exported here).
 *
 * Backends: `vxlan` (with `DirectRouting`: peers on the node's own underlay subnet are routed
 * to directly, the others over VXLAN) and `host-gw` (a route per peer via its PublicIP /
 * PublicIPv6, no encapsulation).
 *
 * @module
 */
import { CniError, Code } from "../../../conf/errors.ts";
import {
  addIp,
  type Cidr,
  compareIp,
  contains,
  formatIp,
  type IP,
  lastAddress,
  networkOf,
  overlaps,
  tryParseCidr,
  tryParseIp,
} from "../../../conf/ip.ts";
import { isObject } from "../../../conf/json.ts";
import type { BackendType, Family } from "./lease.ts";

export {
  type BackendType,
  type Family,
  type FamilyLease,
  leaseFamily,
  leaseLabel,
  leaseValue,
  type NodeAttrs,
  parseLease,
  sameAttrs,
  subnetKey,
  type SubnetLease,
  subnetsPrefix,
} from "./lease.ts";

/** The default etcd prefix: flannel's. */
export const DEFAULT_PREFIX = "/coreos.com/network";

/** The UDP port of flannel's VXLAN backend (the Linux default; IANA's is 4789). */
export const FLANNEL_VXLAN_PORT = 8472;

/** The cluster network every node agrees on. */
export interface NetworkConfig {
  /** The IPv4 part (`EnableIPv4`, default true): `Network`, `SubnetLen`, `SubnetMin/Max`. */
  v4?: SubnetRange;
  /** The IPv6 part (`EnableIPv6`): `IPv6Network`, `IPv6SubnetLen`, `IPv6SubnetMin/Max`. */
  v6?: SubnetRange;
  backend: Backend;
}

/** One family's network and the window of subnets that may be leased in it. */
export interface SubnetRange {
  network: Cidr;
  subnetLen: number;
  /** The network addresses of the first and last subnet that may be leased. */
  subnetMin: IP;
  subnetMax: IP;
}

/** The config's `Backend`. */
export interface Backend {
  type: BackendType;
  vni: number;
  port: number;
  /** vxlan only: peers on the node's underlay subnet get a route, not VXLAN. */
  directRouting: boolean;
}

const bad = (msg: string) => new CniError(Code.InvalidConfig, msg);

/** The config key under `prefix`. */
export function configKey(prefix: string): string {
  return `${prefix}/config`;
}

/** The families a config leases, IPv4 first. */
export function familiesOf(cfg: NetworkConfig): Family[] {
  return [...(cfg.v4 ? [4 as const] : []), ...(cfg.v6 ? [6 as const] : [])];
}

/** The range of `family` (undefined when the config does not lease it). */
export function rangeOf(cfg: NetworkConfig, family: Family): SubnetRange | undefined {
  return family === 4 ? cfg.v4 : cfg.v6;
}

/** flannel's names of one family's fields. */
const FIELDS = {
  4: { net: "Network", len: "SubnetLen", min: "SubnetMin", max: "SubnetMax", bits: 32 },
  6: {
    net: "IPv6Network",
    len: "IPv6SubnetLen",
    min: "IPv6SubnetMin",
    max: "IPv6SubnetMax",
    bits: 128,
  },
} as const;

/**
 * Checks a config and fills flannel's defaults (pkg/subnet CheckNetworkConfig): IPv4 on
 * unless `EnableIPv4` is false, IPv6 when `EnableIPv6` is true; SubnetLen 24 when the network
 * is /22 or larger, else network + 2 (IPv6SubnetLen 64 when /62 or larger, else + 2);
 * SubnetMin the second subnet, SubnetMax the last.
 *
 * @param raw the parsed JSON
 * @param where names the config in messages ("etcd key /coreos.com/network/config")
 * @throws {CniError} code 7 naming the field and value
 */
export function parseNetworkConfig(raw: unknown, where: string): NetworkConfig {
  if (!isObject(raw)) throw bad(`Invalid network config in ${where}: not a JSON object`);
  const enable4 = flagOf(raw.EnableIPv4, "EnableIPv4", true, where);
  const enable6 = flagOf(raw.EnableIPv6, "EnableIPv6", false, where);
  if (!enable4 && !enable6) {
    throw bad(`Invalid "EnableIPv4" in ${where}: false, and "EnableIPv6" is not true: no family`);
  }
  const cfg: NetworkConfig = { backend: backendOf(raw.Backend, where) };
  if (enable4) cfg.v4 = rangeFrom(raw, 4, where);
  if (enable6) {
    if (raw.IPv6Network === undefined || raw.IPv6Network === "") {
      throw bad(`Missing "IPv6Network" in ${where}: "EnableIPv6" is true`);
    }
    cfg.v6 = rangeFrom(raw, 6, where);
  }
  return cfg;
}

function flagOf(v: unknown, key: string, dflt: boolean, where: string): boolean {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "boolean") {
    throw bad(`Invalid "${key}" in ${where}: ${JSON.stringify(v)} is not a bool`);
  }
  return v;
}

function rangeFrom(raw: Record<string, unknown>, family: Family, where: string): SubnetRange {
  const f = FIELDS[family];
  const v = raw[f.net];
  const network = typeof v === "string" ? tryParseCidr(v) : undefined;
  if (!network || network.family !== family) {
    throw bad(
      `Invalid "${f.net}" in ${where}: ${JSON.stringify(v)} is not an IPv${family} CIDR`,
    );
  }
  const net = { ...network, ip: network.network };
  const subnetLen = subnetLenOf(raw[f.len], net, family, where);
  const size = 1n << BigInt(f.bits - subnetLen);
  const subnetMin = boundOf(raw[f.min], f.min, net, subnetLen, where) ??
    addIp(net.network, size);
  const subnetMax = boundOf(raw[f.max], f.max, net, subnetLen, where) ??
    addIp(lastAddress(net), 1n - size);
  if (compareIp(subnetMin, subnetMax) > 0) {
    throw bad(`Invalid "${f.min}" in ${where}: ${formatIp(subnetMin)} is above ${f.max}`);
  }
  return { network: net, subnetLen, subnetMin, subnetMax };
}

function subnetLenOf(v: unknown, net: Cidr, family: Family, where: string): number {
  const f = FIELDS[family];
  // flannel: subnets of at least 4 addresses, at least four of them (the first is unused).
  const maxLen = f.bits - 2;
  if (v === undefined || v === null || v === 0) {
    if (net.prefix > maxLen - 2) {
      throw bad(
        `Invalid "${f.net}" in ${where}: a /${net.prefix} is too small (at most /${maxLen - 2})`,
      );
    }
    const dflt = family === 4 ? 24 : 64;
    return net.prefix <= dflt - 2 ? dflt : net.prefix + 2;
  }
  if (typeof v !== "number" || !Number.isInteger(v) || v > maxLen || v < net.prefix + 2) {
    throw bad(
      `Invalid "${f.len}" in ${where}: ${JSON.stringify(v)} must be ${net.prefix + 2} to ` +
        `${maxLen} (at least four subnets of the /${net.prefix})`,
    );
  }
  return v;
}

function boundOf(v: unknown, key: string, net: Cidr, len: number, where: string) {
  if (v === undefined || v === null || v === "") return undefined;
  const ip = typeof v === "string" ? tryParseIp(v) : undefined;
  if (!ip || ip.family !== net.family || !contains(net, ip)) {
    throw bad(
      `Invalid "${key}" in ${where}: ${JSON.stringify(v)} is not an address of the network`,
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
  network?: string;
  subnetLen?: number;
  ipv6Network?: string;
  ipv6SubnetLen?: number;
  vni: number;
  port: number;
  backend?: BackendType;
  directRouting?: boolean;
}): string {
  const out: Record<string, unknown> = {};
  if (c.network) out.Network = c.network;
  else out.EnableIPv4 = false;
  if (c.subnetLen) out.SubnetLen = c.subnetLen;
  if (c.ipv6Network) {
    out.EnableIPv6 = true;
    out.IPv6Network = c.ipv6Network;
    if (c.ipv6SubnetLen) out.IPv6SubnetLen = c.ipv6SubnetLen;
  }
  out.Backend = c.backend === "host-gw" ? { Type: "host-gw" } : {
    Type: "vxlan",
    VNI: c.vni,
    Port: c.port,
    ...(c.directRouting ? { DirectRouting: true } : {}),
  };
  return JSON.stringify(out);
}

/** Whether a leased subnet fits a range (in the window, of the configured length). */
export function subnetFits(r: SubnetRange, sn: Cidr): boolean {
  return sn.family === r.network.family && sn.prefix === r.subnetLen &&
    contains(r.network, sn.network) && compareIp(sn.network, r.subnetMin) >= 0 &&
    compareIp(sn.network, r.subnetMax) <= 0;
}

/**
 * The first `limit` free subnets of the window, in order (flannel picks one of its first
 * 100 at random, so that racing nodes rarely pick the same).
 */
export function freeSubnets(r: SubnetRange, taken: Cidr[], limit = 100): Cidr[] {
  const out: Cidr[] = [];
  const size = 1n << BigInt(FIELDS[r.network.family].bits - r.subnetLen);
  for (
    let ip = r.subnetMin;
    compareIp(ip, r.subnetMax) <= 0 && out.length < limit;
    ip = addIp(ip, size)
  ) {
    const sn = subnetOf(ip, r.subnetLen);
    if (!taken.some((t) => t.family === sn.family && overlaps(t, sn))) out.push(sn);
  }
  return out;
}

/** The subnet `network/len` as a Cidr. */
export function subnetOf(network: IP, len: number): Cidr {
  return { ip: network, network, prefix: len, family: network.family };
}
