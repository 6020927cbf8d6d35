/**
 * Small readers for IPAM configs held as plain JSON objects. Keys match exactly first and
 * then case-insensitively, as Go's encoding/json does for the reference plugins' structs
 * (containerd sends capability args with capitalised keys such as `Subnet`).
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import { fieldOf as field, isObject } from "../../conf/json.ts";
import { canonicalCidr, formatIp, parseIp } from "../../conf/ip.ts";
import type { CniDns, CniResult, CniRoute } from "../../conf/types.ts";
import { compareVersions } from "../../conf/version.ts";

/** A JSON object. */
export type Json = Record<string, unknown>;

export { fieldOf as field, isObject } from "../../conf/json.ts";

function invalid(path: string, value: unknown, what: string): CniError {
  return new CniError(Code.InvalidConfig, `Invalid "${path}": ${JSON.stringify(value)} ${what}`);
}

/** An optional string field; `null` counts as absent (as in Go). */
export function optString(obj: Json | undefined, key: string, path: string): string | undefined {
  const v = field(obj, key);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw invalid(path, v, "is not a string");
  return v;
}

/** An optional object field. */
export function optObject(obj: Json | undefined, key: string, path: string): Json | undefined {
  const v = field(obj, key);
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw invalid(path, v, "is not an object");
  return v;
}

/** An optional array field. */
export function optArray(obj: Json | undefined, key: string, path: string): unknown[] | undefined {
  const v = field(obj, key);
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw invalid(path, v, "is not a list");
  return v;
}

/** The `ipam` object of a network conf (code 7 when it is missing, as the reference). */
export function ipamSection(raw: Json): Json {
  const ipam = optObject(raw, "ipam", "ipam");
  if (!ipam) throw new CniError(Code.InvalidConfig, `IPAM config missing "ipam" key`);
  return ipam;
}

/** Reads a list of `ip` or `ip/prefix` strings (args.cni.ips, runtimeConfig.ips). */
export function ipList(list: unknown[] | undefined, path: string): string[] {
  return (list ?? []).map((v, i) => {
    if (typeof v !== "string") throw invalid(`${path}[${i}]`, v, "is not a string");
    return v;
  });
}

/** `routes` as canonical routes: `dst` canonical CIDR text, `gw` canonical IP text. */
export function parseRoutes(list: unknown[] | undefined, path: string): CniRoute[] | undefined {
  if (!list) return undefined;
  return list.map((r, i) => {
    const where = `${path}[${i}]`;
    if (!isObject(r)) throw invalid(where, r, "is not an object");
    const dst = optString(r, "dst", `${where}.dst`);
    if (dst === undefined) throw new CniError(Code.InvalidConfig, `Missing "${where}.dst"`);
    const out: CniRoute = { dst: canonicalCidr(dst, `${where}.dst`) };
    const gw = optString(r, "gw", `${where}.gw`);
    if (gw) out.gw = formatIp(parseIp(gw, `${where}.gw`));
    for (const k of ["mtu", "advmss", "priority", "table", "scope"] as const) {
      const v = field(r, k);
      if (v === undefined || v === null) continue;
      if (typeof v !== "number" || !Number.isInteger(v)) {
        throw invalid(`${where}.${k}`, v, "is not an integer");
      }
      out[k] = v;
    }
    return out;
  });
}

/** A `dns` object ({nameservers, domain, search, options}). */
export function parseDns(obj: Json | undefined, path: string): CniDns | undefined {
  if (!obj) return undefined;
  const strings = (k: string) => ipList(optArray(obj, k, `${path}.${k}`), `${path}.${k}`);
  const dns: CniDns = {};
  const ns = strings("nameservers");
  if (ns.length) dns.nameservers = ns;
  const domain = optString(obj, "domain", `${path}.domain`);
  if (domain) dns.domain = domain;
  const search = strings("search");
  if (search.length) dns.search = search;
  const options = strings("options");
  if (options.length) dns.options = options;
  return dns;
}

/** The conf's `cniVersion` (a missing one is 0.1.0, as the spec says). */
export function confVersion(raw: Json): string {
  const v = optString(raw, "cniVersion", "cniVersion");
  return v ? v : "0.1.0";
}

/**
 * Spec 0.2.0 and older results hold one address per family: reject more, as the
 * reference plugins do.
 *
 * @throws {CniError} code 7
 */
export function checkPerFamily(version: string, families: Array<4 | 6>): void {
  const v4 = families.filter((f) => f === 4).length;
  const v6 = families.length - v4;
  if (v4 <= 1 && v6 <= 1) return;
  let old = true;
  try {
    old = compareVersions(version, "0.3.0") < 0;
  } catch {
    // An unparseable version counts as old, as Go's version.GreaterThanOrEqualTo fails then.
  }
  if (old) {
    throw new CniError(
      Code.InvalidConfig,
      `CNI version "${version}" does not support more than 1 address per family`,
    );
  }
}

/** An empty IPAM result in the canonical shape (no interfaces). */
export function emptyResult(): CniResult {
  return { cniVersion: "1.1.0", ips: [] };
}
