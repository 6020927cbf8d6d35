/**
 * The L3 part of a bridge ADD (reference bridge.go): gateways computed from the IPAM result,
 * gateway addresses on the bridge, forwarding, container sysctls, addresses and routes in the
 * container, and masquerading.
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import { formatIp, networkOf, parseCidr } from "../../conf/ip.ts";
import type { CniResult } from "../../conf/types.ts";
import type { DelegateContext } from "../types.ts";
import { type LinkInfo, type Netlink, type NetNs, readSysctl } from "../../ffi/mod.ts";
import type { BridgeConf } from "./_bridge_conf.ts";
import { canonicalNet, familyOf } from "../_shared/cidr.ts";
import { configureIface, ipamAddWithUndo } from "../_shared/iface.ts";
import {
  type HostOptions,
  isKind,
  kernelError,
  type Rollback,
  trySysctl,
} from "../_shared/link_common.ts";
import {
  detectMasqBackend,
  masqChain,
  masqComment,
  setupMasq,
  teardownMasq,
} from "../_shared/masq.ts";

/** Gateway addresses (`gw/prefix`) per family that belong on the bridge. */
export type Gateways = { 4: string[]; 6: string[] };

/** Everything one bridge ADD works with. */
export interface BridgeAdd {
  c: BridgeConf;
  ctx: DelegateContext;
  opts: HostOptions;
  host: Netlink;
  cont: Netlink;
  contNs: NetNs;
  undo: Rollback;
}

/** Whether IPAM's routes already hold a default route with a gateway, per family. */
function defaultRoutesWithGw(result: CniResult): { 4: boolean; 6: boolean } {
  const have = { 4: false, 6: false };
  for (const r of result.routes ?? []) {
    const fam = familyOf(r.dst);
    if (r.gw && canonicalNet(r.dst) === (fam === 4 ? "0.0.0.0/0" : "::/0")) have[fam] = true;
  }
  return have;
}

/**
 * The reference's `calcGateways`: points every IP at the container interface (index 2),
 * fills a missing gateway with network+1 when isGateway, adds a default route per family
 * when isDefaultGateway and IPAM gave none with a gateway, and lists the bridge addresses.
 */
export function calcGateways(result: CniResult, c: BridgeConf, ifIndex = 2): Gateways {
  const gws: Gateways = { 4: [], 6: [] };
  const haveDefault = defaultRoutesWithGw(result);
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

/** Masquerades the container's addresses (ipMasq), with the undo pushed first. */
async function masquerade(s: BridgeAdd, cidrs: string[]): Promise<void> {
  const id = s.ctx.env.containerId ?? "";
  const chain = await masqChain(s.c.name, id);
  const backend = detectMasqBackend();
  s.undo.push(() => teardownMasq(s.opts, backend, chain));
  await setupMasq(s.opts, backend, cidrs, chain, masqComment(s.c.name, id));
}

/**
 * Runs IPAM and applies its result: container sysctls, addresses and routes, gateway
 * addresses on the bridge with forwarding, masquerading. Fills `result`'s ips, routes, dns.
 */
export async function configureL3(s: BridgeAdd, result: CniResult, br: LinkInfo): Promise<void> {
  const ipam = await ipamAddWithUndo(s.ctx, s.undo);
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
  if (s.c.ipMasq) await masquerade(s, result.ips!.map((i) => i.address));
}
