/**
 * Results of every spec version (0.1.0 to 1.1.0): parsing into the canonical 1.1.0 shape
 * ({@linkcode CniResult}) and converting it back to the version a caller asked for.
 *
 * The rules follow libcni's converters (pkg/types/020, 040, 100):
 * - to 0.3.0/0.3.1/0.4.0: `ips[].version` is added by address family; interfaces keep only
 *   `name`, `mac`, `sandbox`;
 * - to 0.1.0/0.2.0: the first IPv4 and the first IPv6 become `ip4`/`ip6`, each route goes
 *   under the one of its destination's family (dst and gw only), interfaces are dropped, and
 *   a result without any IP cannot be converted;
 * - from 0.x: `ips[].version` is dropped.
 *
 * One deliberate difference: libcni shares one Go route type across versions, so route
 * `mtu`/`advmss`/`priority`/`table`/`scope` leak into its 0.3/0.4 output. The 0.3/0.4 spec
 * has no such fields, so podplex drops them (and ignores them when reading a 0.x result).
 *
 * @module
 */
import { CniError, Code, type CodeNumber } from "./errors.ts";
import { compareVersions, CURRENT_VERSION, IMPLICIT_VERSION, requireSupported } from "./version.ts";
import type { CniDns, CniInterface, CniIpConfig, CniResult, CniRoute } from "./types.ts";
import { isObject as isObj } from "./json.ts";

type Obj = Record<string, unknown>;

/** The address family of an IP address or CIDR: 4 or 6. */
export function ipFamily(address: string): 4 | 6 {
  return address.includes(":") ? 6 : 4;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Whether `s` is a plain IPv4 or IPv6 address (no prefix). */
export function isIp(s: string): boolean {
  if (IPV4.test(s)) return true;
  if (!s.includes(":") || /[^0-9a-fA-F:.]/.test(s)) return false;
  try {
    // The URL parser implements the full IPv6 text grammar (:: and embedded IPv4).
    new URL(`http://[${s}]/`);
    return true;
  } catch {
    return false;
  }
}

/** Whether `s` is `address/prefix` with a prefix valid for the address's family. */
export function isCidr(s: string): boolean {
  const slash = s.lastIndexOf("/");
  if (slash < 0) return false;
  const ip = s.slice(0, slash);
  const bits = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bits) || !isIp(ip)) return false;
  return Number(bits) <= (ipFamily(ip) === 4 ? 32 : 128);
}

/** Parser state: where we are (for messages) and which code a bad value gets. */
interface Ctx {
  code: CodeNumber;
}

function fail(ctx: Ctx, msg: string): never {
  throw new CniError(ctx.code, `Cannot decode result: ${msg}`);
}

function optString(ctx: Ctx, o: Obj, key: string, path: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") fail(ctx, `"${path}.${key}" is ${JSON.stringify(v)}, not a string`);
  return v;
}

function optInt(ctx: Ctx, o: Obj, key: string, path: string): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v)) {
    fail(ctx, `"${path}.${key}" is ${JSON.stringify(v)}, not an integer`);
  }
  return v;
}

function reqCidr(ctx: Ctx, o: Obj, key: string, path: string): string {
  const v = optString(ctx, o, key, path);
  if (v === undefined) fail(ctx, `"${path}.${key}" is missing`);
  if (!isCidr(v)) fail(ctx, `"${path}.${key}" is "${v}", not an address with a prefix`);
  return v;
}

function optIp(ctx: Ctx, o: Obj, key: string, path: string): string | undefined {
  const v = optString(ctx, o, key, path);
  if (v !== undefined && !isIp(v)) fail(ctx, `"${path}.${key}" is "${v}", not an IP address`);
  return v;
}

function list(ctx: Ctx, o: Obj, key: string): Obj[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) fail(ctx, `"${key}" is not a list`);
  return v.map((item, i) => {
    if (!isObj(item)) fail(ctx, `"${key}[${i}]" is not an object`);
    return item;
  });
}

function stringList(ctx: Ctx, o: Obj, key: string): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) {
    fail(ctx, `"dns.${key}" is not a list of strings`);
  }
  return v.length ? [...v] : undefined;
}

function parseDns(ctx: Ctx, raw: unknown): CniDns | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isObj(raw)) fail(ctx, `"dns" is not an object`);
  const dns: CniDns = {};
  const nameservers = stringList(ctx, raw, "nameservers");
  const domain = optString(ctx, raw, "domain", "dns");
  const search = stringList(ctx, raw, "search");
  const options = stringList(ctx, raw, "options");
  if (nameservers) dns.nameservers = nameservers;
  if (domain) dns.domain = domain;
  if (search) dns.search = search;
  if (options) dns.options = options;
  return Object.keys(dns).length ? dns : undefined;
}

function parseRoute(ctx: Ctx, o: Obj, path: string, extras: boolean): CniRoute {
  const route: CniRoute = { dst: reqCidr(ctx, o, "dst", path) };
  const gw = optIp(ctx, o, "gw", path);
  if (gw) route.gw = gw;
  if (!extras) return route;
  for (const key of ["mtu", "advmss", "priority"] as const) {
    const n = optInt(ctx, o, key, path);
    if (n) route[key] = n; // Go's omitempty: zero means unset
  }
  for (const key of ["table", "scope"] as const) {
    const n = optInt(ctx, o, key, path);
    if (n !== undefined) route[key] = n; // pointers in Go: zero is a value
  }
  return route;
}

function parseInterface(ctx: Ctx, o: Obj, i: number, extras: boolean): CniInterface {
  const path = `interfaces[${i}]`;
  const name = optString(ctx, o, "name", path);
  if (name === undefined) fail(ctx, `"${path}.name" is missing`);
  const intf: CniInterface = { name };
  const mac = optString(ctx, o, "mac", path);
  if (mac) intf.mac = mac;
  if (extras) {
    const mtu = optInt(ctx, o, "mtu", path);
    if (mtu) intf.mtu = mtu;
  }
  const sandbox = optString(ctx, o, "sandbox", path);
  if (sandbox) intf.sandbox = sandbox;
  if (extras) {
    const socketPath = optString(ctx, o, "socketPath", path);
    if (socketPath) intf.socketPath = socketPath;
    const pciID = optString(ctx, o, "pciID", path);
    if (pciID) intf.pciID = pciID;
  }
  return intf;
}

function parseIp(ctx: Ctx, o: Obj, path: string): CniIpConfig {
  const ip: CniIpConfig = { address: reqCidr(ctx, o, "address", path) };
  const gateway = optIp(ctx, o, "gateway", path);
  if (gateway) ip.gateway = gateway;
  const index = optInt(ctx, o, "interface", path);
  if (index !== undefined) {
    if (index < 0) fail(ctx, `"${path}.interface" is ${index}, a negative index`);
    ip.interface = index;
  }
  return ip;
}

/** 0.3.0 to 1.1.0 share one layout; 0.x lacks the 1.1 interface and route fields. */
function fromCurrentLayout(ctx: Ctx, raw: Obj, extras: boolean): CniResult {
  const out: CniResult = { cniVersion: CURRENT_VERSION };
  const interfaces = list(ctx, raw, "interfaces").map((o, i) => parseInterface(ctx, o, i, extras));
  const ips = list(ctx, raw, "ips").map((o, i) => parseIp(ctx, o, `ips[${i}]`));
  const routes = list(ctx, raw, "routes").map((o, i) => parseRoute(ctx, o, `routes[${i}]`, extras));
  if (interfaces.length) out.interfaces = interfaces;
  if (ips.length) out.ips = ips;
  if (routes.length) out.routes = routes;
  const dns = parseDns(ctx, raw.dns);
  if (dns) out.dns = dns;
  return out;
}

/** 0.1.0/0.2.0: `ip4` and `ip6` each hold an address, a gateway and their routes. */
function fromLegacyLayout(ctx: Ctx, raw: Obj): CniResult {
  const out: CniResult = { cniVersion: CURRENT_VERSION };
  const ips: CniIpConfig[] = [];
  const routes: CniRoute[] = [];
  for (const key of ["ip4", "ip6"]) {
    const v = raw[key];
    if (v === undefined || v === null) continue;
    if (!isObj(v)) fail(ctx, `"${key}" is not an object`);
    const ip: CniIpConfig = { address: reqCidr(ctx, v, "ip", key) };
    const gateway = optIp(ctx, v, "gateway", key);
    if (gateway) ip.gateway = gateway;
    ips.push(ip);
    list(ctx, v, "routes").forEach((r, i) =>
      routes.push(parseRoute(ctx, r, `${key}.routes[${i}]`, false))
    );
  }
  if (ips.length) out.ips = ips;
  if (routes.length) out.routes = routes;
  const dns = parseDns(ctx, raw.dns);
  if (dns) out.dns = dns;
  return out;
}

/**
 * Parses a result of any supported spec version into the canonical 1.1.0 shape. The
 * result's own `cniVersion` wins; `version` is used when it has none (as libcni assumes the
 * config's version), else 0.1.0. Unknown keys are dropped.
 *
 * @param raw the parsed JSON of a result
 * @param version the version to assume when `raw` names none
 * @param code the error code for a malformed result (6 by default; 7 for a `prevResult`
 *   inside a config)
 * @returns a fresh canonical result with `cniVersion` "1.1.0"
 * @throws {CniError} `code` when `raw` is not a result; 1 when its version is unsupported
 *
 * @example
 * ```ts
 * const r = toCanonical({ cniVersion: "0.2.0", ip4: { ip: "10.0.0.2/24" } });
 * // r.ips[0].address === "10.0.0.2/24"
 * ```
 */
export function toCanonical(
  raw: unknown,
  version?: string,
  code: CodeNumber = Code.DecodeFailure,
): CniResult {
  const ctx: Ctx = { code };
  if (!isObj(raw)) fail(ctx, `expected a JSON object, got ${JSON.stringify(raw)?.slice(0, 60)}`);
  const named = raw.cniVersion;
  if (named !== undefined && typeof named !== "string") {
    fail(ctx, `"cniVersion" is ${JSON.stringify(named)}, not a string`);
  }
  const v = requireSupported(named || version || IMPLICIT_VERSION);
  if (compareVersions(v, "0.3.0") < 0) return fromLegacyLayout(ctx, raw);
  return fromCurrentLayout(ctx, raw, compareVersions(v, "1.0.0") >= 0);
}

function copyDns(dns: CniDns | undefined): CniDns | undefined {
  if (!dns) return undefined;
  const out: CniDns = {};
  if (dns.nameservers?.length) out.nameservers = [...dns.nameservers];
  if (dns.domain) out.domain = dns.domain;
  if (dns.search?.length) out.search = [...dns.search];
  if (dns.options?.length) out.options = [...dns.options];
  return Object.keys(out).length ? out : undefined;
}

function basicRoute(r: CniRoute): Obj {
  return r.gw ? { dst: r.dst, gw: r.gw } : { dst: r.dst };
}

function fullRoute(r: CniRoute): Obj {
  const out: Obj = basicRoute(r);
  if (r.mtu) out.mtu = r.mtu;
  if (r.advmss) out.advmss = r.advmss;
  if (r.priority) out.priority = r.priority;
  if (r.table !== undefined) out.table = r.table;
  if (r.scope !== undefined) out.scope = r.scope;
  return out;
}

function withOptional(out: Obj, key: string, items: unknown[] | undefined): void {
  if (items && items.length) out[key] = items;
}

/** One `ips[]` entry; 0.3.x/0.4.0 also carry `version` ("4"/"6"), first as libcni writes it. */
function ipEntry(ip: CniIpConfig, withVersion: boolean): Obj {
  const o: Obj = withVersion ? { version: String(ipFamily(ip.address)) } : {};
  if (ip.interface !== undefined) o.interface = ip.interface;
  o.address = ip.address;
  if (ip.gateway) o.gateway = ip.gateway;
  return o;
}

function to1x(r: CniResult, toVersion: string): Obj {
  const out: Obj = { cniVersion: toVersion };
  withOptional(out, "interfaces", r.interfaces?.map((i) => ({ ...i })));
  withOptional(out, "ips", r.ips?.map((ip) => ipEntry(ip, false)));
  withOptional(out, "routes", r.routes?.map(fullRoute));
  const dns = copyDns(r.dns);
  if (dns) out.dns = dns;
  return out;
}

function to04x(r: CniResult, toVersion: string): Obj {
  const out: Obj = { cniVersion: toVersion };
  withOptional(
    out,
    "interfaces",
    r.interfaces?.map((i) => {
      const o: Obj = { name: i.name };
      if (i.mac) o.mac = i.mac;
      if (i.sandbox) o.sandbox = i.sandbox;
      return o;
    }),
  );
  withOptional(out, "ips", r.ips?.map((ip) => ipEntry(ip, true)));
  withOptional(out, "routes", r.routes?.map(basicRoute));
  const dns = copyDns(r.dns);
  if (dns) out.dns = dns;
  return out;
}

function to02x(r: CniResult, toVersion: string): Obj {
  const byFamily: Record<4 | 6, Obj | undefined> = { 4: undefined, 6: undefined };
  for (const ip of r.ips ?? []) {
    const family = ipFamily(ip.address);
    if (byFamily[family]) continue;
    byFamily[family] = ip.gateway ? { ip: ip.address, gateway: ip.gateway } : { ip: ip.address };
  }
  if (!byFamily[4] && !byFamily[6]) {
    // libcni: "cannot convert: no valid IP addresses" (a plain error there, 999 via skel);
    // podplex calls it what it is: the result cannot be expressed in that version.
    throw new CniError(
      Code.IncompatibleVersion,
      `Cannot convert result to version "${toVersion}": no valid IP addresses`,
    );
  }
  for (const route of r.routes ?? []) {
    const target = byFamily[ipFamily(route.dst)];
    if (!target) continue;
    ((target.routes ??= []) as Obj[]).push(basicRoute(route));
  }
  const out: Obj = { cniVersion: toVersion };
  if (byFamily[4]) out.ip4 = byFamily[4];
  if (byFamily[6]) out.ip6 = byFamily[6];
  const dns = copyDns(r.dns);
  if (dns) out.dns = dns;
  return out;
}

/**
 * Converts a canonical result to the JSON object of spec version `toVersion`, with keys in
 * the order libcni prints them.
 *
 * @throws {CniError} code 1 when `toVersion` is unsupported, or when it is 0.1.0/0.2.0 and
 *   the result has no IP address
 *
 * @example
 * ```ts
 * convertResult({ cniVersion: "1.1.0", ips: [{ address: "10.0.0.2/24" }] }, "0.4.0");
 * // { cniVersion: "0.4.0", ips: [{ version: "4", address: "10.0.0.2/24" }] }
 * ```
 */
export function convertResult(r: CniResult, toVersion: string): Record<string, unknown> {
  requireSupported(toVersion);
  if (compareVersions(toVersion, "0.3.0") < 0) return to02x(r, toVersion);
  if (compareVersions(toVersion, "1.0.0") < 0) return to04x(r, toVersion);
  return to1x(r, toVersion);
}

/**
 * Re-expresses a result JSON of any version in `toVersion` (parse, then convert).
 *
 * @throws {CniError} as {@linkcode toCanonical} and {@linkcode convertResult}
 */
export function reencodeResult(raw: unknown, toVersion: string): Record<string, unknown> {
  return convertResult(toCanonical(raw, toVersion), toVersion);
}
