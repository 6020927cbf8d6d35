/**
 * Helpers shared by the built-in link delegates (bridge, vxlan, macvlan, ipvlan, loopback):
 * reading config fields, opening the container netns, the veth pair, applying an IPAM result
 * to an interface (as the reference plugins' `ipam.ConfigureIface`), the CHECK validators,
 * and undo stacks for ADD.
 *
 * Every kernel call here is synchronous FFI on a netlink socket opened inside its netns, so
 * nothing ever awaits inside a netns window (DESIGN.md, "Environment facts").
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { canonicalCidr, formatIp, networkOf, parseCidr, parseIp } from "../conf/ip.ts";
import type { CniDns, CniIpConfig, CniResult, CniRoute } from "../conf/types.ts";
import type { DelegateContext } from "./types.ts";
import { type LinkInfo, Netlink, NetlinkError, NetNs, writeSysctl } from "../ffi/mod.ts";

type Obj = Record<string, unknown>;

/**
 * Where a delegate's "host" side lives. The exported delegates use the process's own netns;
 * tests build delegates with `hostNs` set to a throwaway netns so that bridges, sysctls and
 * iptables rules never touch the real host.
 */
export interface HostOptions {
  /** Path of the netns that plays the host (default: the calling process's netns). */
  hostNs?: string;
}

// ---- config fields -------------------------------------------------------------------------

function badField(key: string, value: unknown, want: string): CniError {
  return new CniError(
    Code.InvalidConfig,
    `Invalid "${key}": ${JSON.stringify(value)} is not ${want}`,
  );
}

/** A boolean field (missing → `dflt`). @throws {CniError} code 7 when not a boolean */
export function confBool(raw: Obj, key: string, dflt = false): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "boolean") throw badField(key, v, "a boolean");
  return v;
}

/** An integer field within [min, max] (missing → undefined). @throws {CniError} code 7 */
export function confInt(raw: Obj, key: string, min: number, max: number): number | undefined {
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v)) throw badField(key, v, "an integer");
  if (v < min || v > max) {
    throw new CniError(
      Code.InvalidConfig,
      `Invalid "${key}": ${v} is not between ${min} and ${max}`,
    );
  }
  return v;
}

/** A string field (missing or empty → undefined). @throws {CniError} code 7 */
export function confString(raw: Obj, key: string): string | undefined {
  const v = raw[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") throw badField(key, v, "a string");
  return v;
}

/** The `ipam.type` of a conf, or undefined for an L2-only attachment. */
export function ipamType(raw: Obj): string | undefined {
  const ipam = raw.ipam;
  if (ipam === undefined || ipam === null) return undefined;
  if (typeof ipam !== "object" || Array.isArray(ipam)) throw badField("ipam", ipam, "an object");
  return confString(ipam as Obj, "type");
}

/** The conf's `dns` when it sets anything (the reference's `dnsConfSet`). */
export function confDns(raw: Obj): CniDns | undefined {
  const d = raw.dns as CniDns | undefined;
  if (!d || typeof d !== "object") return undefined;
  const set = d.nameservers?.length || d.search?.length || d.options?.length || d.domain;
  return set ? d : undefined;
}

const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/**
 * The MAC requested for the container interface: `runtimeConfig.mac` over `args.cni.mac` over
 * CNI_ARGS `MAC=` over the conf's own `field` (macvlan's `mac`), lower-cased.
 *
 * @throws {CniError} code 7 when the value is not a MAC address
 */
export function requestedMac(raw: Obj, ctx: DelegateContext, field?: string): string | undefined {
  const rc = (raw.runtimeConfig ?? {}) as Obj;
  const cni = ((raw.args ?? {}) as Obj).cni as Obj | undefined;
  const mac =
    (rc.mac || cni?.mac || ctx.cniArgs.get("MAC") || (field ? raw[field] : undefined)) as unknown;
  if (mac === undefined || mac === "") return undefined;
  if (typeof mac !== "string" || !MAC.test(mac)) {
    throw badField(field ?? "mac", mac, "a MAC address");
  }
  return mac.toLowerCase();
}

// ---- names, namespaces, errors -------------------------------------------------------------

/** `n` random bytes as lower-case hex. */
export function randomHex(n: number): string {
  const b = crypto.getRandomValues(new Uint8Array(n));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** A host-side veth name as the reference makes it: `veth` + 8 random hex chars. */
export function randomVethName(): string {
  return `veth${randomHex(4)}`;
}

/** A temporary link name for a link created in a netns before it is renamed to CNI_IFNAME. */
export function tempLinkName(): string {
  return `tmp${randomHex(4)}`;
}

/** Wraps a kernel failure as code 101 with a sentence naming the action. */
export function kernelError(action: string, err: unknown): CniError {
  if (err instanceof CniError) return err;
  const text = err instanceof Error ? err.message : String(err);
  return new CniError(Code.KernelFailure, `${action}: ${text}`, undefined, { cause: err });
}

/** Whether an error is a NetlinkError of the given kind. */
export function isKind(err: unknown, kind: NetlinkError["kind"]): boolean {
  return err instanceof NetlinkError && err.kind === kind;
}

/**
 * Opens the container netns for ADD/CHECK.
 *
 * @throws {CniError} code 3 when CNI_NETNS is missing or names no netns
 */
export function openContainerNs(path: string | undefined): NetNs {
  if (!path) throw new CniError(Code.InvalidEnv, "CNI_NETNS is required");
  try {
    return NetNs.open(path);
  } catch (err) {
    if (isKind(err, "notfound")) {
      throw new CniError(Code.UnknownContainer, `Cannot open netns "${path}": it does not exist`);
    }
    throw kernelError(`Cannot open netns "${path}"`, err);
  }
}

/** Opens the container netns for DEL: null when none was given or it is gone. */
export function tryOpenNs(path: string | undefined): NetNs | null {
  if (!path) return null;
  try {
    return NetNs.open(path);
  } catch (err) {
    if (isKind(err, "notfound")) return null;
    throw kernelError(`Cannot open netns "${path}"`, err);
  }
}

/** Opens a netlink socket in the host netns (the process's, or `opts.hostNs`). */
export function openHost(opts: HostOptions): Netlink {
  return Netlink.open(opts.hostNs);
}

/** Writes a sysctl and ignores failures (the reference's `_, _ = sysctl.Sysctl(...)`). */
export function trySysctl(key: string, value: string, ns?: NetNs | string): void {
  try {
    writeSysctl(key, value, ns);
  } catch {
    // Best effort on purpose: e.g. IPv6 sysctls are absent when IPv6 is disabled.
  }
}

/**
 * Deletes a link in `nl`'s netns by name; a missing link is success (DEL is idempotent).
 *
 * @returns whether a link was deleted
 */
export function deleteLinkIfExists(nl: Netlink, name: string): boolean {
  try {
    nl.deleteLink(name);
    return true;
  } catch (err) {
    if (isKind(err, "notfound")) return false;
    throw kernelError(`Cannot delete "${name}"`, err);
  }
}

/**
 * Fails when CNI_IFNAME already exists in the container (spec: "a plugin must fail if the
 * interface name already exists").
 */
export function requireFreeIfname(cont: Netlink, ifname: string, netns: string): void {
  if (cont.getLink(ifname)) {
    throw new CniError(
      Code.AlreadyExists,
      `Interface "${ifname}" already exists in netns "${netns}"`,
    );
  }
}

/**
 * Renames a link created under a temporary name in the container to CNI_IFNAME.
 *
 * @returns the renamed link as the kernel reports it
 */
export function renameInContainer(cont: Netlink, tmp: string, ifname: string): LinkInfo {
  try {
    cont.rename(tmp, ifname);
  } catch (err) {
    if (isKind(err, "exists")) {
      throw new CniError(
        Code.AlreadyExists,
        `Interface "${ifname}" already exists in the container`,
      );
    }
    throw kernelError(`Cannot rename "${tmp}" to "${ifname}"`, err);
  }
  return cont.requireLink(ifname);
}

/**
 * The interface of the first default route in `nl`'s netns (IPv4 first), as the reference's
 * `getDefaultRouteInterfaceName`; undefined when there is none.
 */
export function defaultRouteInterface(nl: Netlink): string | undefined {
  for (const fam of [4, 6] as const) {
    const r = nl.listRoutes({ family: fam, table: 254 }).find((x) =>
      (x.dst === "0.0.0.0/0" || x.dst === "::/0") && x.dev !== undefined
    );
    if (r) return nl.getLink(r.dev!)?.name;
  }
  return undefined;
}

// ---- undo stack ----------------------------------------------------------------------------

/** The undo steps of an ADD: run in reverse on failure, all of them, errors reported. */
export class Rollback {
  #steps: Array<() => unknown> = [];

  /** Records how to undo a side effect that just succeeded. */
  push(undo: () => unknown): void {
    this.#steps.push(undo);
  }

  /** Undoes everything in reverse order; failures go to stderr (the ADD error wins). */
  async run(): Promise<void> {
    for (const undo of this.#steps.reverse()) {
      try {
        await undo();
      } catch (err) {
        console.error(`podplex: undo step failed: ${err instanceof Error ? err.message : err}`);
      }
    }
    this.#steps = [];
  }
}

// ---- the veth pair -------------------------------------------------------------------------

/** What {@linkcode createVeth} needs. */
export interface VethRequest {
  host: Netlink;
  cont: Netlink;
  contNs: NetNs;
  ifname: string;
  netnsPath: string;
  mtu?: number;
  mac?: string;
  /** IFLA_GROUP for the container end (the meta-plugin's per-pod link group). */
  group?: number;
}

/**
 * Creates a veth pair from the host side with its container end directly in the container
 * netns under a temporary name, then renames it to CNI_IFNAME there. The host end is named
 * `veth` + 8 hex chars; a name clash with an existing host link is retried.
 *
 * @returns the host end and the container end as the kernel reports them
 * @throws {CniError} 105 when CNI_IFNAME exists in the container, 101 on kernel failures
 */
export function createVeth(r: VethRequest): { host: LinkInfo; cont: LinkInfo } {
  requireFreeIfname(r.cont, r.ifname, r.netnsPath);
  const tmp = tempLinkName();
  for (let attempt = 0;; attempt++) {
    const name = randomVethName();
    try {
      r.host.addVeth({
        name,
        peerName: tmp,
        peerNs: r.contNs,
        mtu: r.mtu,
        peerMac: r.mac,
        peerGroup: r.group,
      });
    } catch (err) {
      if (isKind(err, "exists") && attempt < 10 && r.host.getLink(name)) continue;
      throw kernelError(`Cannot create a veth pair for "${r.ifname}"`, err);
    }
    try {
      const cont = renameInContainer(r.cont, tmp, r.ifname);
      return { host: r.host.requireLink(name), cont };
    } catch (err) {
      deleteLinkIfExists(r.host, name);
      throw err;
    }
  }
}

// ---- applying an IPAM result ---------------------------------------------------------------

/** The address family of an address or CIDR text. */
export function familyOf(text: string): 4 | 6 {
  return text.includes(":") ? 6 : 4;
}

/** Runs IPAM ADD and fails when it returns no address (the reference's message). */
export async function ipamAdd(ctx: DelegateContext): Promise<CniResult> {
  const r = await ctx.ipam("ADD");
  if (!r?.ips?.length) {
    throw new CniError(Code.DelegateFailed, "IPAM plugin returned missing IP config");
  }
  return r;
}

function enableIpv6(ns: NetNs, ifname: string): void {
  for (const dev of ["lo", ifname]) {
    try {
      writeSysctl(`net/ipv6/conf/${dev}/disable_ipv6`, "0", ns);
    } catch (err) {
      if (!isKind(err, "notfound")) throw kernelError(`Cannot enable IPv6 on "${dev}"`, err);
    }
  }
}

/**
 * Applies the addresses and routes of `result` to `ifname` in the container, as the reference
 * plugins' `ipam.ConfigureIface` does: every IP must point at `ifname`, IPv6 is enabled when
 * needed, the link goes up, and a route without `gw` goes via the first gateway of its family.
 *
 * @throws {CniError} 101 naming the address or route that failed
 */
export function configureIface(cont: Netlink, ns: NetNs, ifname: string, result: CniResult): void {
  const link = cont.requireLink(ifname);
  const gws: { 4?: string; 6?: string } = {};
  let v6Enabled = false;
  for (const ipc of result.ips ?? []) {
    if (ipc.interface === undefined) continue;
    if (result.interfaces?.[ipc.interface]?.name !== ifname) {
      throw new CniError(
        Code.Internal,
        `Cannot add "${ipc.address}" to "${ifname}": invalid interface index`,
      );
    }
    const fam = familyOf(ipc.address);
    if (fam === 6 && !v6Enabled) {
      enableIpv6(ns, ifname);
      v6Enabled = true;
    }
    try {
      cont.addAddr(link.index, canonicalCidr(ipc.address));
    } catch (err) {
      throw kernelError(`Cannot add address "${ipc.address}" to "${ifname}"`, err);
    }
    if (ipc.gateway && gws[familyOf(ipc.gateway)] === undefined) {
      gws[familyOf(ipc.gateway)] = ipc.gateway;
    }
  }
  try {
    cont.setUp(link.index);
  } catch (err) {
    throw kernelError(`Cannot set "${ifname}" up`, err);
  }
  for (const r of result.routes ?? []) {
    addRouteVia(cont, link.index, ifname, r, gws[familyOf(r.dst)]);
  }
}

function addRouteVia(
  cont: Netlink,
  dev: number,
  ifname: string,
  r: CniRoute,
  dfltGw?: string,
): void {
  const gw = r.gw ?? dfltGw;
  try {
    cont.addRoute({
      dst: canonicalNet(r.dst),
      gw,
      dev,
      mtu: r.mtu,
      advmss: r.advmss,
      metric: r.priority,
      table: r.table,
      scope: r.scope,
    });
  } catch (err) {
    throw kernelError(`Cannot add route "${r.dst} via ${gw ?? "-"} dev ${ifname}"`, err);
  }
}

/** The canonical network text of a CIDR (`10.1.0.0/16` for `10.1.2.3/16`). */
export function canonicalNet(cidr: string): string {
  const c = parseCidr(cidr);
  return `${formatIp(networkOf(c.ip, c.prefix))}/${c.prefix}`;
}

// ---- CHECK helpers -------------------------------------------------------------------------

/** A CHECK failure: the spec gives no code; podplex uses 101 (the kernel state differs). */
export function checkFailed(msg: string): CniError {
  return new CniError(Code.KernelFailure, msg);
}

/** The prevResult CHECK needs. @throws {CniError} code 7 "Required prevResult missing" */
export function requirePrev(ctx: DelegateContext): CniResult {
  if (!ctx.prevResult) throw new CniError(Code.InvalidConfig, "Required prevResult missing");
  return ctx.prevResult;
}

/** The prevResult interface named CNI_IFNAME whose sandbox is CNI_NETNS. */
export function sandboxIface(prev: CniResult, ctx: DelegateContext) {
  const i = prev.interfaces?.find((x) => x.name === ctx.env.ifname && x.sandbox === ctx.env.netns);
  if (!i) {
    throw checkFailed(
      `prevResult has no interface "${ctx.env.ifname}" in sandbox "${ctx.env.netns}"`,
    );
  }
  return i;
}

/**
 * Checks that every address of `ips` is on `ifname` with its connected route, as the
 * reference's `ValidateExpectedInterfaceIPs`.
 */
export function checkAddrs(cont: Netlink, ifname: string, ips: CniIpConfig[] = []): void {
  const link = cont.getLink(ifname);
  if (!link) throw checkFailed(`Cannot find container link "${ifname}"`);
  const have = new Set(cont.listAddrs(link.index).map((a) => canonicalCidr(a.cidr)));
  for (const ipc of ips) {
    const want = canonicalCidr(ipc.address);
    if (!have.has(want)) throw checkFailed(`Address "${want}" is not on "${ifname}"`);
    const net = canonicalNet(want);
    const routes = cont.listRoutes({ family: familyOf(want) });
    if (!routes.some((r) => sameNet(r.dst, net))) {
      throw checkFailed(`No route to "${net}" for address "${want}" on "${ifname}"`);
    }
  }
}

/** Checks that every route of `routes` (dst, and gw when given) is in the container's tables. */
export function checkRoutes(cont: Netlink, routes: CniRoute[] = []): void {
  for (const want of routes) {
    const net = canonicalNet(want.dst);
    const found = cont.listRoutes({ family: familyOf(net) }).some((r) =>
      sameNet(r.dst, net) && (!want.gw || (r.gw !== undefined && sameIp(r.gw, want.gw)))
    );
    if (!found) {
      throw checkFailed(`Route "${want.dst}" via "${want.gw ?? "-"}" is not in the routing table`);
    }
  }
}

function sameNet(a: string, b: string): boolean {
  try {
    return canonicalNet(a) === b;
  } catch {
    return false;
  }
}

function sameIp(a: string, b: string): boolean {
  const x = parseIp(a);
  const y = parseIp(b);
  return x.family === y.family && x.value === y.value;
}

// ---- masquerade (ipMasq) -------------------------------------------------------------------

/** Which firewall tool programs masquerading. */
export type MasqBackend = "iptables" | "nftables";

const NFT_TABLE = "podplex_masquerade";

/**
 * The per-container chain name the reference plugins use: `CNI-` + the first 24 hex chars of
 * sha512(network name + container id), 28 chars (iptables' limit).
 */
export async function masqChain(network: string, containerId: string): Promise<string> {
  const data = new TextEncoder().encode(network + containerId);
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-512", data));
  const hex = Array.from(hash.subarray(0, 12), (b) => b.toString(16).padStart(2, "0")).join("");
  return `CNI-${hex}`;
}

/** The rule comment the reference plugins use (Go's `name: %q id: %q`). */
export function masqComment(network: string, containerId: string): string {
  return `name: ${JSON.stringify(network)} id: ${JSON.stringify(containerId)}`;
}

/** iptables when installed (as the reference), else nftables. */
export function detectMasqBackend(): MasqBackend {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/sbin:/sbin").split(":")) {
    try {
      if (Deno.statSync(`${dir}/iptables`).isFile) return "iptables";
    } catch { /* not in this directory */ }
  }
  return "nftables";
}

async function fw(opts: HostOptions, tool: string, args: string[], check = true): Promise<string> {
  const argv = opts.hostNs ? ["nsenter", `--net=${opts.hostNs}`, tool, ...args] : [tool, ...args];
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success && check) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new CniError(Code.KernelFailure, `"${tool} ${args.join(" ")}" failed: ${err}`);
  }
  return out.success ? text : "";
}

async function ipt(opts: HostOptions, fam: 4 | 6, args: string[], check = true): Promise<string> {
  return await fw(opts, fam === 4 ? "iptables" : "ip6tables", ["-w", "-t", "nat", ...args], check);
}

async function appendUnique(opts: HostOptions, fam: 4 | 6, chain: string, rule: string[]) {
  if (!(await ruleExists(opts, fam, chain, rule))) await ipt(opts, fam, ["-A", chain, ...rule]);
}

async function ruleExists(opts: HostOptions, fam: 4 | 6, chain: string, rule: string[]) {
  const tool = fam === 4 ? "iptables" : "ip6tables";
  const argv = ["-w", "-t", "nat", "-C", chain, ...rule];
  const full = opts.hostNs ? ["nsenter", `--net=${opts.hostNs}`, tool, ...argv] : [tool, ...argv];
  const out = await new Deno.Command(full[0], {
    args: full.slice(1),
    stdout: "null",
    stderr: "null",
  })
    .output();
  return out.success;
}

/**
 * Masquerades traffic from each address of `cidrs` to anything outside its own network and
 * outside multicast, through a per-container chain (iptables) or rules tagged with the chain
 * name (nftables).
 */
export async function setupMasq(
  opts: HostOptions,
  backend: MasqBackend,
  cidrs: string[],
  chain: string,
  comment: string,
): Promise<void> {
  for (const cidr of cidrs) {
    const fam = familyOf(cidr);
    const ip = cidr.split("/")[0];
    const mcast = fam === 4 ? "224.0.0.0/4" : "ff00::/8";
    if (backend === "nftables") {
      await nftMasq(opts, fam, ip, canonicalNet(cidr), mcast, chain);
      continue;
    }
    if (!(await ipt(opts, fam, ["-S", chain], false))) await ipt(opts, fam, ["-N", chain]);
    const tag = ["-m", "comment", "--comment", comment];
    await appendUnique(opts, fam, chain, ["-d", canonicalNet(cidr), "-j", "ACCEPT", ...tag]);
    await appendUnique(opts, fam, chain, ["!", "-d", mcast, "-j", "MASQUERADE", ...tag]);
    await appendUnique(opts, fam, "POSTROUTING", ["-s", ip, "-j", chain, ...tag]);
  }
}

async function nftMasq(
  opts: HostOptions,
  fam: 4 | 6,
  ip: string,
  net: string,
  mcast: string,
  tag: string,
) {
  const p = fam === 4 ? "ip" : "ip6";
  const script = [
    `add table inet ${NFT_TABLE}`,
    `add chain inet ${NFT_TABLE} postrouting { type nat hook postrouting priority srcnat; }`,
    `add rule inet ${NFT_TABLE} postrouting ${p} saddr ${ip} ${p} daddr != ${net} ${p} daddr != ${mcast} masquerade comment "${tag}"`,
  ].join("\n");
  await fw(opts, "nft", [script]);
}

/**
 * Removes what {@linkcode setupMasq} added for `chain`, for both families, without needing the
 * container's addresses (they are gone when the link was deleted first). Missing rules are fine.
 */
export async function teardownMasq(opts: HostOptions, backend: MasqBackend, chain: string) {
  if (backend === "nftables") return await nftUnmasq(opts, chain);
  for (const fam of [4, 6] as const) {
    const listing = await ipt(opts, fam, ["-L", "POSTROUTING", "-n", "--line-numbers"], false);
    const nums = listing.split("\n").map((l) => l.trim().split(/\s+/))
      .filter((f) => f[1] === chain).map((f) => Number(f[0])).sort((a, b) => b - a);
    for (const n of nums) await ipt(opts, fam, ["-D", "POSTROUTING", String(n)], false);
    if (await ipt(opts, fam, ["-S", chain], false)) {
      await ipt(opts, fam, ["-F", chain]);
      await ipt(opts, fam, ["-X", chain]);
    }
  }
}

async function nftUnmasq(opts: HostOptions, tag: string) {
  const listing = await fw(
    opts,
    "nft",
    ["-a", "list", "chain", "inet", NFT_TABLE, "postrouting"],
    false,
  );
  for (const line of listing.split("\n")) {
    const m = /comment "([^"]+)" # handle (\d+)/.exec(line);
    if (m && m[1] === tag) {
      await fw(
        opts,
        "nft",
        ["delete", "rule", "inet", NFT_TABLE, "postrouting", "handle", m[2]],
        false,
      );
    }
  }
}
