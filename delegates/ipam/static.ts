/**
 * The built-in static IPAM: hands out the addresses its config (or the runtime) names, as
 * the reference plugin does (containernetworking/plugins, plugins/ipam/static):
 * `ipam.addresses` [{address, gateway}], `ipam.routes`, `ipam.dns`; CNI_ARGS `IP`
 * (comma-separated CIDRs, appended) and `GATEWAY` (set on the CNI_ARGS addresses whose
 * subnet holds it); `args.cni.ips` and then `runtimeConfig.ips` replace all of those. DEL does nothing.
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import {
  type Cidr,
  contains,
  formatCidr,
  formatIp,
  type IP,
  ipEquals,
  parseIp,
  tryParseCidr,
  tryParseIp,
} from "../../conf/ip.ts";
import type { CniDns, CniResult, CniRoute } from "../../conf/types.ts";
import type { BuiltinDelegate, DelegateContext } from "../types.ts";
import {
  checkPerFamily,
  confVersion,
  ipamSection,
  ipList,
  isObject,
  type Json,
  optArray,
  optObject,
  optString,
  parseDns,
  parseRoutes,
} from "./_conf.ts";

/** One static address: the CIDR as given (host bits kept) and an optional gateway. */
export interface StaticAddress {
  cidr: Cidr;
  gateway?: IP;
}

/** static's parsed config. */
export interface StaticConf {
  name: string;
  cniVersion: string;
  /** `ipam.addresses`. */
  addresses: StaticAddress[];
  /** From `runtimeConfig.ips`, else `args.cni.ips`: they replace every other address. */
  override?: StaticAddress[];
  routes?: CniRoute[];
  dns?: CniDns;
}

function cidrOrThrow(text: string, what: string): Cidr {
  const c = tryParseCidr(text.trim());
  if (!c) {
    throw new CniError(
      Code.InvalidConfig,
      `Invalid "${what}": "${text}" is not in CIDR notation (ip/prefix)`,
    );
  }
  return c;
}

function parseAddresses(list: unknown[] | undefined): StaticAddress[] {
  return (list ?? []).map((a, i) => {
    const path = `ipam.addresses[${i}]`;
    if (!isObject(a)) {
      throw new CniError(Code.InvalidConfig, `Invalid "${path}": ${JSON.stringify(a)}`);
    }
    const out: StaticAddress = {
      cidr: cidrOrThrow(optString(a, "address", `${path}.address`) ?? "", `${path}.address`),
    };
    const gw = optString(a, "gateway", `${path}.gateway`);
    if (gw) out.gateway = parseIp(gw, `${path}.gateway`);
    return out;
  });
}

/**
 * Parses the whole network conf for static.
 *
 * @throws {CniError} code 7 naming the field at fault
 */
export function parseStaticConf(raw: Json): StaticConf {
  const ipam = ipamSection(raw);
  const runtime = optObject(raw, "runtimeConfig", "runtimeConfig");
  const args = optObject(optObject(raw, "args", "args"), "cni", "args.cni");
  const conf: StaticConf = {
    name: optString(raw, "name", "name") ?? "",
    cniVersion: confVersion(raw),
    addresses: parseAddresses(optArray(ipam, "addresses", "ipam.addresses")),
  };
  // The later source wins: runtimeConfig over args over the config and CNI_ARGS.
  for (const [list, path] of [[args, "args.cni.ips"], [runtime, "runtimeConfig.ips"]] as const) {
    const ips = ipList(optArray(list, "ips", path), path);
    if (ips.length) conf.override = ips.map((t, i) => ({ cidr: cidrOrThrow(t, `${path}[${i}]`) }));
  }
  const routes = parseRoutes(optArray(ipam, "routes", "ipam.routes"), "ipam.routes");
  if (routes) conf.routes = routes;
  const dns = parseDns(optObject(ipam, "dns", "ipam.dns"), "ipam.dns");
  if (dns && Object.keys(dns).length) conf.dns = dns;
  checkPerFamily(conf.cniVersion, (conf.override ?? conf.addresses).map((a) => a.cidr.family));
  return conf;
}

/**
 * The addresses for this call: the config's plus CNI_ARGS `IP` with `GATEWAY` applied, or
 * the override from args/runtimeConfig.
 *
 * @throws {CniError} code 7 for a malformed CNI_ARGS value
 */
export function staticAddresses(conf: StaticConf, cniArgs: Map<string, string>): StaticAddress[] {
  if (conf.override) return conf.override;
  const fromEnv: StaticAddress[] = [];
  const ip = cniArgs.get("IP");
  if (ip) { for (const t of ip.split(",")) fromEnv.push({ cidr: cidrOrThrow(t, "CNI_ARGS IP") }); }
  const gw = cniArgs.get("GATEWAY");
  if (gw) {
    for (const t of gw.split(",")) {
      const g = tryParseIp(t.trim());
      if (!g) throw new CniError(Code.InvalidConfig, `Invalid "CNI_ARGS GATEWAY": "${t}"`);
      // Only CNI_ARGS addresses: the reference has not parsed the config's ones yet here.
      for (const a of fromEnv) if (contains(a.cidr, g)) a.gateway = g;
    }
  }
  const out = [...conf.addresses, ...fromEnv];
  checkPerFamily(conf.cniVersion, out.map((a) => a.cidr.family));
  return out;
}

/** ADD: the addresses, routes and dns of the config. */
export function staticAdd(conf: StaticConf, ctx: DelegateContext): Promise<CniResult> {
  // Errors must reject, not throw, for callers that chain .catch().
  return Promise.resolve().then(() => staticResult(conf, ctx));
}

function staticResult(conf: StaticConf, ctx: DelegateContext): CniResult {
  const ips = staticAddresses(conf, ctx.cniArgs).map((a) => {
    const ip: { address: string; gateway?: string } = {
      address: formatCidr(a.cidr.ip, a.cidr.prefix),
    };
    if (a.gateway) ip.gateway = formatIp(a.gateway);
    return ip;
  });
  const result: CniResult = { cniVersion: "1.1.0", ips };
  if (conf.routes) result.routes = conf.routes;
  if (conf.dns) result.dns = conf.dns;
  return result;
}

/**
 * CHECK, as the reference: every configured address found in prevResult must carry the
 * configured gateway (an address missing from prevResult is not checked).
 */
export function staticCheck(conf: StaticConf, ctx: DelegateContext): Promise<void> {
  return Promise.resolve().then(() => checkAgainstPrev(conf, ctx));
}

function checkAgainstPrev(conf: StaticConf, ctx: DelegateContext): Promise<void> {
  if (!ctx.prevResult) {
    return Promise.reject(new CniError(Code.InvalidConfig, "Required prevResult missing"));
  }
  const prev = (ctx.prevResult.ips ?? []).map((p) => ({
    ip: tryParseCidr(p.address)?.ip,
    gateway: p.gateway ? tryParseIp(p.gateway) : undefined,
  }));
  for (const a of staticAddresses(conf, ctx.cniArgs)) {
    const found = prev.find((p) => ipEquals(p.ip, a.cidr.ip));
    if (found && a.gateway && !ipEquals(found.gateway, a.gateway)) {
      return Promise.reject(
        new CniError(
          Code.InvalidConfig,
          `static: address ${formatIp(a.cidr.ip)} on "${ctx.env.ifname}" has gateway ` +
            `${found.gateway ? formatIp(found.gateway) : "none"}, not ${formatIp(a.gateway)}`,
        ),
      );
    }
  }
  return Promise.resolve();
}

/** The static IPAM delegate (type `static`). */
export const staticIpam: BuiltinDelegate<StaticConf> = {
  type: "static",
  parseConf: parseStaticConf,
  add: staticAdd,
  // Nothing was allocated, so there is nothing to release (as the reference).
  del: () => Promise.resolve(),
  check: staticCheck,
  status: () => Promise.resolve(),
  gc: () => Promise.resolve(),
};
