/**
 * The cluster IPAM's config: Whereabouts' `ipam` section read as Whereabouts reads it
 * (k8snetworkplumbingwg/whereabouts pkg/config, README, doc/extended-configuration.md), plus
 * a few podplex fields.
 *
 * Whereabouts fields: `range` (a CIDR, or `first-last/prefix`), `range_start`, `range_end`,
 * `exclude` (CIDRs or single addresses), `ipRanges` (a list of `{range, range_start,
 * range_end, exclude}`; the top-level `range` comes first), `enable_overlapping_ranges`
 * (default true), `network_name`, `gateway`, `routes`, `dns`, `addresses` (static ones, as
 * the static IPAM), `etcd_host` (one endpoint or a comma-separated list),
 * `etcd_ca_cert_file`, `etcd_cert_file`, `etcd_key_file`. Fields Whereabouts reads for its
 * Kubernetes backend or logging (`kubernetes`, `log_file`, `log_level`, `datastore`,
 * `configuration_path`, `leader_*`, `reconciler_cron_expression`, `sleep_for_race`,
 * `node_slice_size`) are accepted and ignored.
 *
 * Whereabouts' flat file (`configuration_path`, else `/etc/kubernetes/cni/net.d/whereabouts.d/
 * whereabouts.conf`, `/etc/cni/net.d/whereabouts.d/whereabouts.conf`) fills the fields the
 * NAD's `ipam` lacks, so NADs that name only their range work as under Whereabouts.
 *
 * podplex fields: `etcd_endpoints` (a list, instead of `etcd_host`), `block_size` (the prefix
 * length of a node's blocks, default 26 for IPv4 and 122 for IPv6 as Calico; 0 = no blocks,
 * every address picked cluster-wide), `block_size_v6`, `node_name` (default: the env
 * `PODPLEX_NODE_NAME`, `NODENAME`, then the host name), `dataDir` (the node-local lock and
 * journal, default `/var/lib/cni/podplex-ipam`), `etcd_prefix` (default `/podplex/ipam/v1`),
 * `etcd_timeout_ms` (bound of one etcd call, default 5000).
 *
 * @module
 */
import { CniError, Code } from "../../../conf/errors.ts";
import {
  type Cidr,
  compareIp,
  contains,
  type IP,
  lastAddress,
  nextIp,
  prevIp,
  tryParseCidr,
  tryParseIp,
} from "../../../conf/ip.ts";
import type { CniDns, CniRoute } from "../../../conf/types.ts";
import {
  confVersion,
  ipamSection,
  isObject,
  type Json,
  optArray,
  optString,
  parseDns,
  parseRoutes,
} from "../_conf.ts";

/** One range to allocate from, resolved to its usable window. */
export interface PoolRange {
  /** The range's network, normalised (`192.168.2.224/28`). */
  subnet: Cidr;
  /** First and last address that may be handed out. */
  first: IP;
  last: IP;
  /** Excluded networks. */
  exclude: Cidr[];
  /** The range as written, for messages. */
  text: string;
}

/** A static address of `addresses`. */
export interface StaticAddr {
  address: string;
  gateway?: string;
}

/** The parsed and defaulted config. */
export interface ClusterConf {
  name: string;
  cniVersion: string;
  ranges: PoolRange[];
  gateway?: IP;
  routes?: CniRoute[];
  dns?: CniDns;
  addresses: StaticAddr[];
  networkName: string;
  overlapping: boolean;
  /** Block prefix lengths by family (0: no blocks). */
  blockSize4: number;
  blockSize6: number;
  nodeName: string;
  dataDir: string;
  etcd: {
    endpoints: string[];
    caFile?: string;
    certFile?: string;
    keyFile?: string;
    prefix: string;
    timeoutMs: number;
  };
}

/** Whereabouts' flat files, in the order it looks for them (after `configuration_path`). */
export const FLAT_FILES = [
  "/etc/kubernetes/cni/net.d/whereabouts.d/whereabouts.conf",
  "/etc/cni/net.d/whereabouts.d/whereabouts.conf",
  "/host/etc/cni/net.d/whereabouts.d/whereabouts.conf",
];

/**
 * The `ipam` section over Whereabouts' flat file: the first of `configuration_path` and
 * {@linkcode FLAT_FILES} that exists fills the fields the section lacks (the section wins),
 * as Whereabouts' GetFlatIPAM + merge do. Read only when the section names no etcd or names
 * a `configuration_path`, so a NAD that carries everything costs no lookup.
 *
 * @throws {CniError} code 7 when the file is not a JSON object
 */
function withFlatFile(ipam: Json): Json {
  const path = typeof ipam.configuration_path === "string" ? ipam.configuration_path : "";
  if (!path && (ipam.etcd_host || ipam.etcd_endpoints)) return ipam;
  for (const p of path ? [path, ...FLAT_FILES] : FLAT_FILES) {
    let text: string;
    try {
      text = Deno.readTextFileSync(p);
    } catch {
      continue;
    }
    let flat: unknown;
    try {
      flat = JSON.parse(text);
    } catch (err) {
      throw bad(`Invalid Whereabouts flat file "${p}": ${(err as Error).message}`);
    }
    if (!isObject(flat)) throw bad(`Invalid Whereabouts flat file "${p}": not a JSON object`);
    return { ...flat, ...ipam };
  }
  return ipam;
}

/** Default node-local directory of the lock files and the DEL journal. */
export const DEFAULT_DATA_DIR = "/var/lib/cni/podplex-ipam";

const bad = (msg: string) => new CniError(Code.InvalidConfig, msg);

/**
 * Parses the whole network conf.
 *
 * @throws {CniError} code 7 naming the field and value
 */
export function parseClusterConf(raw: Json): ClusterConf {
  const ipam = withFlatFile(ipamSection(raw));
  const ranges: PoolRange[] = [];
  const top = optString(ipam, "range", "ipam.range");
  if (top) ranges.push(parseRange(ipam, "ipam"));
  (optArray(ipam, "ipRanges", "ipam.ipRanges") ?? []).forEach((r, i) => {
    if (!isObject(r)) throw bad(`Invalid "ipam.ipRanges[${i}]": not an object`);
    ranges.push(parseRange(r, `ipam.ipRanges[${i}]`));
  });
  const addresses = parseStatic(optArray(ipam, "addresses", "ipam.addresses"));
  if (ranges.length === 0 && addresses.length === 0) {
    throw bad(`Missing "ipam.range": give a range or "ipam.ipRanges"`);
  }
  const gw = optString(ipam, "gateway", "ipam.gateway");
  const conf: ClusterConf = {
    name: optString(raw, "name", "name") ?? "",
    cniVersion: confVersion(raw),
    ranges,
    addresses,
    networkName: optString(ipam, "network_name", "ipam.network_name") ?? "",
    overlapping: optBool(ipam, "enable_overlapping_ranges") ?? true,
    blockSize4: blockSize(ipam, "block_size", 26, 32),
    blockSize6: blockSize(ipam, "block_size_v6", 122, 128),
    nodeName: optString(ipam, "node_name", "ipam.node_name") ?? nodeFromEnv(),
    dataDir: optString(ipam, "dataDir", "ipam.dataDir") ?? DEFAULT_DATA_DIR,
    etcd: parseEtcd(ipam),
  };
  if (gw) conf.gateway = ipOf(gw, "ipam.gateway");
  const routes = parseRoutes(optArray(ipam, "routes", "ipam.routes"), "ipam.routes");
  if (routes) conf.routes = routes;
  const dns = parseDns(isObject(ipam.dns) ? ipam.dns : undefined, "ipam.dns");
  if (dns && Object.keys(dns).length) conf.dns = dns;
  return conf;
}

function ipOf(text: string, path: string): IP {
  const ip = tryParseIp(text.trim());
  if (!ip) throw bad(`Invalid "${path}": "${text}" is not an IP address`);
  return ip;
}

function optBool(obj: Json, key: string): boolean | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") {
    throw bad(`Invalid "ipam.${key}": ${JSON.stringify(v)} is not a boolean`);
  }
  return v;
}

function blockSize(ipam: Json, key: string, def: number, max: number): number {
  const v = ipam[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) {
    throw bad(`Invalid "ipam.${key}": ${JSON.stringify(v)} is not a prefix length 0-${max}`);
  }
  return v;
}

/**
 * One range, as Whereabouts' LoadIPAMConfig and GetIPRange resolve it: `a-b/p` sets start
 * and end; the usable window is network+1 .. broadcast-1; `range_start` / `range_end` count
 * only when they lie inside it (else they are ignored, as Whereabouts ignores them).
 */
function parseRange(obj: Json, path: string): PoolRange {
  const text = optString(obj, "range", `${path}.range`) ?? "";
  let start = optIp(obj, "range_start", path);
  let end = optIp(obj, "range_end", path);
  let cidrText = text;
  const dash = text.indexOf("-");
  if (dash > 0) {
    start = ipOf(text.slice(0, dash), `${path}.range`);
    cidrText = text.slice(dash + 1);
    end = tryParseCidr(cidrText)?.ip;
  }
  const c = tryParseCidr(cidrText.trim());
  if (!c) throw bad(`Invalid "${path}.range": "${text}" is not a CIDR`);
  if (start && !contains(c, start)) {
    throw bad(`Invalid "${path}.range": start ${text.slice(0, dash)} is not in ${cidrText}`);
  }
  const hostBits = (c.family === 4 ? 32 : 128) - c.prefix;
  if (hostBits < 2) throw bad(`Invalid "${path}.range": "${text}" has no usable address`);
  let first = nextIp(c.network);
  let last = prevIp(lastAddress(c));
  if (start && compareIp(start, first) >= 0 && compareIp(start, last) <= 0) first = start;
  if (end && compareIp(end, first) >= 0 && compareIp(end, last) <= 0) last = end;
  const exclude = (optArray(obj, "exclude", `${path}.exclude`) ?? []).map((e, i) =>
    excludeCidr(e, `${path}.exclude[${i}]`)
  );
  return { subnet: c, first, last, exclude, text };
}

function optIp(obj: Json, key: string, path: string): IP | undefined {
  const t = optString(obj, key, `${path}.${key}`);
  return t ? ipOf(t, `${path}.${key}`) : undefined;
}

/** An `exclude` entry: a CIDR, or a bare address (a /32 or /128), as Whereabouts takes it. */
function excludeCidr(v: unknown, path: string): Cidr {
  const t = typeof v === "string" ? v.trim() : "";
  const c = tryParseCidr(t) ??
    (tryParseIp(t) ? tryParseCidr(`${t}/${t.includes(":") ? 128 : 32}`) : undefined);
  if (!c) throw bad(`Invalid "${path}": ${JSON.stringify(v)} is not a CIDR`);
  return c;
}

function parseStatic(list: unknown[] | undefined): StaticAddr[] {
  return (list ?? []).map((a, i) => {
    const path = `ipam.addresses[${i}]`;
    if (!isObject(a)) throw bad(`Invalid "${path}": not an object`);
    const address = optString(a, "address", `${path}.address`) ?? "";
    if (!tryParseCidr(address)) throw bad(`Invalid "${path}.address": "${address}" is not a CIDR`);
    const gateway = optString(a, "gateway", `${path}.gateway`);
    if (gateway) ipOf(gateway, `${path}.gateway`);
    return gateway ? { address, gateway } : { address };
  });
}

function parseEtcd(ipam: Json): ClusterConf["etcd"] {
  const list = optArray(ipam, "etcd_endpoints", "ipam.etcd_endpoints");
  const host = optString(ipam, "etcd_host", "ipam.etcd_host");
  const endpoints = list
    ? list.map((e, i) => {
      if (typeof e !== "string" || !e) throw bad(`Invalid "ipam.etcd_endpoints[${i}]": not a URL`);
      return e;
    })
    : (host ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  if (endpoints.length === 0) {
    throw bad(`Missing "ipam.etcd_host": the cluster IPAM needs etcd endpoints`);
  }
  const timeout = ipam.etcd_timeout_ms;
  if (timeout !== undefined && (typeof timeout !== "number" || timeout < 100)) {
    throw bad(`Invalid "ipam.etcd_timeout_ms": ${JSON.stringify(timeout)} is not a number >= 100`);
  }
  const out: ClusterConf["etcd"] = {
    endpoints,
    prefix: (optString(ipam, "etcd_prefix", "ipam.etcd_prefix") ?? "/podplex/ipam/v1").replace(
      /\/+$/,
      "",
    ),
    timeoutMs: (timeout as number | undefined) ?? 5000,
  };
  const ca = optString(ipam, "etcd_ca_cert_file", "ipam.etcd_ca_cert_file");
  const cert = optString(ipam, "etcd_cert_file", "ipam.etcd_cert_file");
  const key = optString(ipam, "etcd_key_file", "ipam.etcd_key_file");
  if (!!cert !== !!key) {
    throw bad(`Invalid "ipam.etcd_cert_file": a client certificate needs "etcd_key_file" too`);
  }
  if (ca) out.caFile = ca;
  if (cert) out.certFile = cert;
  if (key) out.keyFile = key;
  return out;
}

/** The node's name: `PODPLEX_NODE_NAME`, `NODENAME` (Whereabouts' variable), the host name. */
function nodeFromEnv(): string {
  try {
    return Deno.env.get("PODPLEX_NODE_NAME") || Deno.env.get("NODENAME") || Deno.hostname();
  } catch {
    return "localhost";
  }
}

/** The block prefix length for a range's family (0: no blocks). */
export function blockPrefix(conf: ClusterConf, r: PoolRange): number {
  const size = r.subnet.family === 4 ? conf.blockSize4 : conf.blockSize6;
  // A range smaller than a block is one block.
  return size === 0 ? 0 : Math.max(size, r.subnet.prefix);
}
