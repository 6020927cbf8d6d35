/**
 * The built-in `bridge` delegate: the reference plugin's config and behaviour (bridge.go of
 * containernetworking/plugins), in small named steps.
 *
 * ADD: ensure the bridge, create a veth with its container end directly in the container
 * netns, enslave the host end, run IPAM, configure the container side, put gateway addresses
 * on the bridge, masquerade. Any failure undoes what was done (veth, IPAM lease, rules).
 * DEL: delete the container link (a missing netns or link is fine), release IPAM, remove the
 * masquerade rules. The bridge itself is never deleted. CHECK: as the reference.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { formatIp, networkOf, parseCidr } from "../conf/ip.ts";
import type { CniDns, CniInterface, CniResult } from "../conf/types.ts";
import type { BuiltinDelegate, DelegateContext } from "./types.ts";
import { type LinkInfo, Netlink, type NetNs, readSysctl } from "../ffi/mod.ts";
import {
  canonicalNet,
  checkAddrs,
  checkFailed,
  checkRoutes,
  confBool,
  confDns,
  configureIface,
  confInt,
  confString,
  createVeth,
  deleteLinkIfExists,
  detectMasqBackend,
  familyOf,
  type HostOptions,
  ipamAdd,
  ipamType,
  isKind,
  kernelError,
  masqChain,
  masqComment,
  openContainerNs,
  openHost,
  requestedMac,
  requirePrev,
  Rollback,
  sandboxIface,
  setupMasq,
  teardownMasq,
  tryOpenNs,
  trySysctl,
} from "./_link_common.ts";

type Obj = Record<string, unknown>;

/** The parsed `bridge` config (every field of the reference plugin). */
export interface BridgeConf {
  /** The network `name` (for masquerade chain names). */
  name: string;
  bridge: string;
  mtu?: number;
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  hairpinMode: boolean;
  promiscMode: boolean;
  vlan: number;
  vlanTrunk: number[];
  preserveDefaultVlan: boolean;
  enabledad: boolean;
  macspoofchk: boolean;
  disableContainerInterface: boolean;
  portIsolation: boolean;
  /** `ipam.type`, absent for an L2-only attachment. */
  ipamType?: string;
  /** The conf's own `dns` when set (it overrides IPAM's, as the reference does). */
  dns?: CniDns;
  /** The whole conf object (for `runtimeConfig.mac` / `args.cni.mac`). */
  raw: Obj;
}

/**
 * Parses `vlanTrunk` ([{id} | {minID, maxID}]) into a sorted list of VLAN ids, as the
 * reference's `collectVlanTrunk`.
 *
 * @throws {CniError} code 7 naming the bad entry
 */
export function parseVlanTrunk(v: unknown): number[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    throw new CniError(
      Code.InvalidConfig,
      `Invalid "vlanTrunk": ${JSON.stringify(v)} is not a list`,
    );
  }
  const ids = new Set<number>();
  for (const item of v as Obj[]) {
    const min = confInt(item, "minID", 1, 4094);
    const max = confInt(item, "maxID", 1, 4094);
    if ((min === undefined) !== (max === undefined)) {
      throw new CniError(
        Code.InvalidConfig,
        `Invalid "vlanTrunk": minID and maxID must be set together`,
      );
    }
    if (min !== undefined && max !== undefined) {
      if (max < min) {
        throw new CniError(
          Code.InvalidConfig,
          `Invalid "vlanTrunk": minID ${min} is greater than maxID ${max}`,
        );
      }
      for (let id = min; id <= max; id++) ids.add(id);
    }
    const id = confInt(item, "id", 1, 4094);
    if (id !== undefined) ids.add(id);
  }
  return [...ids].sort((a, b) => a - b);
}

/**
 * Validates and defaults a bridge config.
 *
 * @param dfltBridge the bridge name when `bridge` is not set (`cni0` for the bridge plugin)
 * @throws {CniError} code 7 naming the field and value
 */
export function parseBridgeConf(raw: Obj, dfltBridge = "cni0"): BridgeConf {
  const isDefaultGateway = confBool(raw, "isDefaultGateway");
  return {
    name: confString(raw, "name") ?? "",
    bridge: confString(raw, "bridge") ?? dfltBridge,
    mtu: confInt(raw, "mtu", 0, 65535) || undefined,
    // isDefaultGateway implies isGateway (reference cmdAdd).
    isGateway: confBool(raw, "isGateway") || isDefaultGateway,
    isDefaultGateway,
    forceAddress: confBool(raw, "forceAddress"),
    ipMasq: confBool(raw, "ipMasq"),
    hairpinMode: confBool(raw, "hairpinMode"),
    promiscMode: confBool(raw, "promiscMode"),
    vlan: confInt(raw, "vlan", 0, 4094) ?? 0,
    vlanTrunk: parseVlanTrunk(raw.vlanTrunk),
    preserveDefaultVlan: confBool(raw, "preserveDefaultVlan"),
    enabledad: confBool(raw, "enabledad"),
    macspoofchk: confBool(raw, "macspoofchk"),
    disableContainerInterface: confBool(raw, "disableContainerInterface"),
    portIsolation: confBool(raw, "portIsolation"),
    ipamType: ipamType(raw),
    dns: confDns(raw),
    raw,
  };
}

/** Rejects combinations ADD cannot do (checked on ADD only, so DEL always works). */
function requireAddable(c: BridgeConf): void {
  const bad = (msg: string) => new CniError(Code.InvalidConfig, msg);
  if (c.hairpinMode && c.promiscMode) {
    throw bad(`Invalid "hairpinMode" with "promiscMode": they cannot be set at the same time`);
  }
  if (c.ipamType && c.disableContainerInterface) {
    throw bad(`Invalid "disableContainerInterface": it cannot be used with "ipam"`);
  }
  for (const f of ["vlan", "vlanTrunk", "macspoofchk"] as const) {
    const set = f === "vlanTrunk" ? c.vlanTrunk.length > 0 : Boolean(c[f]);
    if (set) {
      throw new CniError(
        Code.UnsupportedField,
        `Field "${f}" is not supported by this podplex build`,
        f === "macspoofchk"
          ? "MAC spoof checking needs nftables rules podplex does not program yet"
          : "bridge port VLANs need netlink bridge VLAN calls the ffi layer does not offer yet",
      );
    }
  }
}

/**
 * Ensures the bridge exists (created with `mtu` when missing), is a bridge, is up, with
 * promiscuous mode when asked and `accept_ra=0` (the plugin owns its routes).
 *
 * @throws {CniError} 105 when a link that is not a bridge has the name
 */
export function ensureBridge(host: Netlink, c: BridgeConf, opts: HostOptions): LinkInfo {
  let br = host.getLink(c.bridge);
  if (!br) {
    try {
      host.addBridge({ name: c.bridge, mtu: c.mtu });
    } catch (err) {
      if (!isKind(err, "exists")) throw kernelError(`Cannot create bridge "${c.bridge}"`, err);
    }
    br = host.requireLink(c.bridge);
    // Pin the MAC: otherwise the bridge takes its lowest-numbered port's MAC, which changes
    // as pods come and go and breaks CHECK (the reference pins it only with isGateway).
    if (br.kind === "bridge") host.setMac(br.index, br.mac);
  }
  if (br.kind !== "bridge") {
    throw new CniError(Code.AlreadyExists, `"${c.bridge}" already exists but is not a bridge`);
  }
  try {
    if (c.promiscMode) host.setPromisc(br.index, true);
    trySysctl(`net/ipv6/conf/${c.bridge}/accept_ra`, "0", opts.hostNs);
    if (!br.up) host.setUp(br.index);
  } catch (err) {
    throw kernelError(`Cannot set up bridge "${c.bridge}"`, err);
  }
  return br;
}

/** Enslaves the host end of the veth, sets its port flags and brings it up. */
function setupHostPort(
  host: Netlink,
  veth: LinkInfo,
  br: LinkInfo,
  c: BridgeConf,
  opts: HostOptions,
) {
  try {
    host.setMaster(veth.index, br.index);
    if (c.hairpinMode || c.portIsolation) {
      host.setBridgePort(veth.index, { hairpin: c.hairpinMode, isolated: c.portIsolation });
    }
    host.setUp(veth.index);
  } catch (err) {
    throw kernelError(`Cannot attach "${veth.name}" to bridge "${br.name}"`, err);
  }
  trySysctl(`net/ipv6/conf/${veth.name}/accept_ra`, "0", opts.hostNs);
}

/** Gateway addresses (`gw/prefix`) per family that belong on the bridge. */
type Gateways = { 4: string[]; 6: string[] };

/**
 * The reference's `calcGateways`: points every IP at the container interface (index 2),
 * fills a missing gateway with network+1 when isGateway, adds a default route per family
 * when isDefaultGateway and IPAM gave none with a gateway, and lists the bridge addresses.
 */
export function calcGateways(result: CniResult, c: BridgeConf, ifIndex = 2): Gateways {
  const gws: Gateways = { 4: [], 6: [] };
  const haveDefault = { 4: false, 6: false };
  for (const r of result.routes ?? []) {
    const fam = familyOf(r.dst);
    if (r.gw && canonicalNet(r.dst) === (fam === 4 ? "0.0.0.0/0" : "::/0")) haveDefault[fam] = true;
  }
  for (const ipc of result.ips ?? []) {
    const cidr = parseCidr(ipc.address);
    ipc.interface = ifIndex;
    if (!ipc.gateway && c.isGateway) {
      ipc.gateway = formatIp({
        family: cidr.family,
        value: networkOf(cidr.ip, cidr.prefix).value + 1n,
      });
    }
    if (c.isDefaultGateway && !haveDefault[cidr.family]) {
      result.routes = [...(result.routes ?? []), {
        dst: cidr.family === 4 ? "0.0.0.0/0" : "::/0",
        gw: ipc.gateway,
      }];
      haveDefault[cidr.family] = true;
    }
    if (c.isGateway && ipc.gateway) gws[cidr.family].push(`${ipc.gateway}/${cidr.prefix}`);
  }
  return gws;
}

/**
 * The reference's `ensureAddr`: puts `gw` on the bridge unless it is there; another IPv4
 * address (or an overlapping IPv6 one) is replaced with forceAddress, else an error. The
 * bridge's MAC is then pinned so it no longer follows its lowest-numbered port.
 */
function ensureGatewayAddr(host: Netlink, br: LinkInfo, gw: string, force: boolean): void {
  const fam = familyOf(gw);
  const want = parseCidr(gw);
  const addrs = host.listAddrs(br.index, fam);
  if (addrs.some((a) => a.cidr === gw)) return;
  for (const a of addrs) {
    const have = parseCidr(a.cidr);
    const overlap = canonicalNet(a.cidr) === canonicalNet(gw) ||
      (have.prefix <= want.prefix ? inNet(have, want) : inNet(want, have));
    if (fam === 6 && !overlap) continue;
    if (!force) {
      throw new CniError(
        Code.AlreadyExists,
        `"${br.name}" already has an IP address different from ${gw}`,
        `it has ${a.cidr}; set "forceAddress" to replace it`,
      );
    }
    host.delAddr(br.index, a.cidr);
  }
  try {
    host.addAddr(br.index, gw);
    host.setMac(br.index, br.mac);
  } catch (err) {
    if (!isKind(err, "exists")) throw kernelError(`Cannot add "${gw}" to bridge "${br.name}"`, err);
  }
}

function inNet(net: ReturnType<typeof parseCidr>, other: ReturnType<typeof parseCidr>): boolean {
  return networkOf(other.ip, net.prefix).value === net.network.value;
}

function enableForwarding(fam: 4 | 6, opts: HostOptions): void {
  const key = fam === 4 ? "net/ipv4/ip_forward" : "net/ipv6/conf/all/forwarding";
  try {
    if (readSysctl(key, opts.hostNs).trim() !== "1") trySysctlStrict(key, opts);
  } catch (err) {
    throw kernelError(`Cannot enable forwarding (${key})`, err);
  }
}

function trySysctlStrict(key: string, opts: HostOptions) {
  trySysctl(key, "1", opts.hostNs);
  if (readSysctl(key, opts.hostNs).trim() !== "1") throw new Error(`${key} stays 0`);
}

/** Sets the container-side sysctls the reference sets before addressing. */
function containerSysctls(ns: NetNs, ifname: string, dad: boolean): void {
  if (dad) {
    trySysctl(`net/ipv6/conf/${ifname}/enhanced_dad`, "1", ns);
    trySysctl(`net/ipv6/conf/${ifname}/accept_dad`, "1", ns);
  } else {
    trySysctl(`net/ipv6/conf/${ifname}/accept_dad`, "0", ns);
  }
  trySysctl(`net/ipv4/conf/${ifname}/arp_notify`, "1", ns);
}

/** Everything one ADD works with. */
interface AddState {
  c: BridgeConf;
  ctx: DelegateContext;
  opts: HostOptions;
  host: Netlink;
  cont: Netlink;
  contNs: NetNs;
  undo: Rollback;
}

async function configureL3(s: AddState, result: CniResult, br: LinkInfo): Promise<void> {
  const ipam = await ipamAdd(s.ctx);
  s.undo.push(() => s.ctx.ipam("DEL"));
  result.ips = ipam.ips;
  result.routes = ipam.routes;
  result.dns = ipam.dns;
  const gws = calcGateways(result, s.c);
  const ifname = s.ctx.env.ifname!;
  containerSysctls(s.contNs, ifname, s.c.enabledad);
  configureIface(s.cont, s.contNs, ifname, result);
  for (const fam of [4, 6] as const) {
    for (const gw of gws[fam]) ensureGatewayAddr(s.host, br, gw, s.c.forceAddress);
    if (gws[fam].length) enableForwarding(fam, s.opts);
  }
  if (s.c.ipMasq) {
    const chain = await masqChain(s.c.name, s.ctx.env.containerId ?? "");
    const backend = detectMasqBackend();
    s.undo.push(() => teardownMasq(s.opts, backend, chain));
    const comment = masqComment(s.c.name, s.ctx.env.containerId ?? "");
    await setupMasq(s.opts, backend, result.ips!.map((i) => i.address), chain, comment);
  }
}

/**
 * Attaches a container to a bridge: the whole ADD after parsing. `onBridge` runs right after
 * the bridge is ensured (vxlan enslaves its tunnel device there).
 *
 * @returns the canonical result: interfaces [bridge, host veth, container]
 */
export async function addBridgeAttachment(
  c: BridgeConf,
  ctx: DelegateContext,
  opts: HostOptions,
  onBridge?: (host: Netlink, br: LinkInfo) => void,
): Promise<CniResult> {
  requireAddable(c);
  const ifname = ctx.env.ifname!;
  using contNs = openContainerNs(ctx.env.netns);
  using host = openHost(opts);
  using cont = Netlink.open(contNs);
  const s: AddState = { c, ctx, opts, host, cont, contNs, undo: new Rollback() };
  try {
    let br = ensureBridge(host, c, opts);
    onBridge?.(host, br);
    const mac = requestedMac(c.raw, ctx);
    const veth = createVeth({
      host,
      cont,
      contNs,
      ifname,
      netnsPath: ctx.env.netns!,
      mtu: c.mtu,
      mac,
      group: ctx.linkGroup,
    });
    s.undo.push(() => deleteLinkIfExists(host, veth.host.name));
    setupHostPort(host, veth.host, br, c, opts);
    const result: CniResult = {
      cniVersion: "1.1.0",
      interfaces: [
        { name: br.name, mac: br.mac },
        { name: veth.host.name, mac: veth.host.mac },
        { name: ifname, mac: veth.cont.mac, sandbox: ctx.env.netns },
      ],
    };
    if (c.ipamType) await configureL3(s, result, br);
    else if (!c.disableContainerInterface) cont.setUp(veth.cont.index);
    // The bridge's MAC may change when its first port joins or an address is set; the host
    // end's may change too (the reference refetches both).
    br = host.requireLink(br.index);
    result.interfaces![0].mac = br.mac;
    result.interfaces![1].mac = host.requireLink(veth.host.index).mac;
    const dns = c.dns ?? result.dns;
    if (dns) result.dns = dns;
    else delete result.dns;
    return result;
  } catch (err) {
    await s.undo.run();
    throw err;
  }
}

/**
 * DEL: deletes the container link (missing netns or link is fine), releases IPAM, removes the
 * masquerade rules. Runs every step even when one fails and throws the first failure.
 */
export async function delBridgeAttachment(c: BridgeConf, ctx: DelegateContext, opts: HostOptions) {
  let first: unknown;
  try {
    using ns = tryOpenNs(ctx.env.netns);
    if (ns) {
      using cont = Netlink.open(ns);
      deleteLinkIfExists(cont, ctx.env.ifname!);
    }
  } catch (err) {
    first = err;
  }
  try {
    if (c.ipamType) await ctx.ipam("DEL");
    if (c.ipamType && c.ipMasq) {
      const chain = await masqChain(c.name, ctx.env.containerId ?? "");
      await teardownMasq(opts, detectMasqBackend(), chain);
    }
  } catch (err) {
    first ??= err;
  }
  if (first) throw first;
}

function findIface(prev: CniResult, name: string, sandbox: boolean): CniInterface | undefined {
  return prev.interfaces?.find((i) => i.name === name && Boolean(i.sandbox) === sandbox);
}

/**
 * CHECK, as the reference: the bridge exists, is a bridge with the prevResult's MAC and the
 * configured promiscuous mode; the container link is a veth with its MAC; a host veth whose
 * peer is the container link is a port of the bridge; addresses and routes are in place.
 */
export async function checkBridgeAttachment(
  c: BridgeConf,
  ctx: DelegateContext,
  opts: HostOptions,
) {
  if (c.ipamType) await ctx.ipam("CHECK");
  const prev = requirePrev(ctx);
  const contIf = sandboxIface(prev, ctx);
  using host = openHost(opts);
  const br = checkBridgeLink(host, c, findIface(prev, c.bridge, false));
  using contNs = openContainerNs(ctx.env.netns);
  using cont = Netlink.open(contNs);
  const link = cont.getLink(contIf.name);
  if (!link) throw checkFailed(`CNI created interface in container "${contIf.name}" not found`);
  if (link.kind !== "veth") throw checkFailed(`Container interface "${link.name}" is not a veth`);
  if (contIf.mac && contIf.mac !== link.mac) {
    throw checkFailed(`Interface "${link.name}" MAC ${link.mac} does not match ${contIf.mac}`);
  }
  const peer = link.peerIndex === undefined ? null : host.getLink(link.peerIndex);
  if (!peer || peer.kind !== "veth" || peer.master !== br.index) {
    throw checkFailed(`CNI veth created for bridge "${c.bridge}" was not found`);
  }
  const hostIf = findIface(prev, peer.name, false);
  if (hostIf?.mac && hostIf.mac !== peer.mac) {
    throw checkFailed(`Interface "${peer.name}" MAC ${peer.mac} does not match ${hostIf.mac}`);
  }
  checkAddrs(cont, contIf.name, prev.ips);
  checkRoutes(cont, prev.routes);
}

function checkBridgeLink(host: Netlink, c: BridgeConf, want?: CniInterface): LinkInfo {
  const br = host.getLink(c.bridge);
  if (!br) throw checkFailed(`CNI created bridge "${c.bridge}" in host namespace was not found`);
  if (br.kind !== "bridge") throw checkFailed(`Interface "${c.bridge}" is not a bridge`);
  if (want?.mac && want.mac !== br.mac) {
    throw checkFailed(`Bridge interface "${c.bridge}" MAC ${br.mac} does not match ${want.mac}`);
  }
  const promisc = (br.flags & 0x100) !== 0; // IFF_PROMISC
  if (promisc !== c.promiscMode) {
    throw checkFailed(
      `Bridge "${c.bridge}" promiscuous mode is ${promisc}, configured ${c.promiscMode}`,
    );
  }
  return br;
}

/** Builds a bridge delegate whose host side lives in `opts.hostNs` (tests) or here. */
export function makeBridge(opts: HostOptions = {}): BuiltinDelegate<BridgeConf> {
  return {
    type: "bridge",
    parseConf: (raw) => parseBridgeConf(raw),
    add: (c, ctx) => addBridgeAttachment(c, ctx, opts),
    del: (c, ctx) => delBridgeAttachment(c, ctx, opts),
    check: (c, ctx) => checkBridgeAttachment(c, ctx, opts),
  };
}

/** The built-in `bridge` delegate (host side in the process's netns). */
export const bridge: BuiltinDelegate<BridgeConf> = makeBridge();
