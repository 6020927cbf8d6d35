/**
 * The built-in `bridge` delegate: the reference plugin's config and behaviour (bridge.go of
 * containernetworking/plugins), in small named steps.
 *
 * ADD: ensure the bridge, create a veth with its container end directly in the container
 * netns, enslave the host end, run IPAM, configure the container side, put gateway addresses
 * on the bridge, masquerade. Any failure undoes what was done (veth, IPAM lease, rules, and a
 * bridge this ADD created when no port is left on it). With `vlan`/`vlanTrunk` the bridge gets
 * VLAN filtering and the host veth its VLANs (`_bridge_vlan.ts`); a kernel without bridge VLAN
 * filtering makes ADD fail with code 2.
 * With `macspoofchk`, nftables drops frames from the pod's host veth whose source MAC is not
 * the container's (`_spoofchk.ts`).
 * DEL: delete the container link (a missing netns or link is fine), release IPAM (before the
 * link when the IPAM's `delNeedsLink` trait says so: DHCP), remove the masquerade and
 * spoof-check rules. The bridge itself is never deleted. CHECK: as the
 * reference.
 *
 * The config is in `_bridge_conf.ts`, the L3 steps in `_bridge_l3.ts`, CHECK in
 * `_bridge_check.ts`.
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import type { CniResult } from "../../conf/types.ts";
import type { BuiltinDelegate, DelegateContext } from "../types.ts";
import { type LinkInfo, Netlink } from "../../ffi/mod.ts";
import { type BridgeConf, parseBridgeConf, requireAddable } from "./_bridge_conf.ts";
import { checkBridgeAttachment } from "./_bridge_check.ts";
import {
  applyPortVlans,
  enableVlanFiltering,
  requireVlanGateway,
  vlanField,
  vlanUnsupported,
} from "./_bridge_vlan.ts";
import { type BridgeAdd, configureL3 } from "./_bridge_l3.ts";
import { requestedMac } from "../_shared/conf_read.ts";
import {
  deleteLinkIfExists,
  type HostOptions,
  isKind,
  kernelError,
  openContainerNs,
  openHost,
  Rollback,
  tryOpenNs,
  trySysctl,
} from "../_shared/link_common.ts";
import { findMasqBackend, masqChain, teardownMasq } from "../_shared/masq.ts";
import { setupSpoofchk, spoofchkNames, teardownSpoofchk } from "../_shared/spoofchk.ts";
import { createVeth } from "../_shared/veth.ts";
import { forwardToIpam } from "../_shared/ipam_forward.ts";

export { type BridgeConf, parseBridgeConf, parseVlanTrunk } from "./_bridge_conf.ts";
export { calcGateways } from "./_bridge_l3.ts";
export { checkBridgeAttachment } from "./_bridge_check.ts";
export { portVlanPlan, type PortVlanStep } from "./_bridge_vlan.ts";

/**
 * Creates the bridge (with `mtu`, and with VLAN filtering when `vlan`/`vlanTrunk` asks for it)
 * unless it exists. When `undo` is given, a bridge this call created is deleted on rollback if
 * no port is left on it (another ADD may have joined it meanwhile).
 *
 * @returns the bridge, and whether this call created it
 */
function createBridge(
  host: Netlink,
  c: BridgeConf,
  undo?: Rollback,
): { br: LinkInfo; created: boolean } {
  const vlanFiltering = vlanField(c) !== undefined;
  let created = false;
  try {
    host.addBridge({ name: c.bridge, mtu: c.mtu, vlanFiltering: vlanFiltering || undefined });
    created = true;
  } catch (err) {
    // The kernel refuses the whole creation then: nothing was made.
    if (vlanFiltering && isKind(err, "notsupported")) throw vlanUnsupported(c, err);
    if (!isKind(err, "exists")) throw kernelError(`Cannot create bridge "${c.bridge}"`, err);
  }
  const br = host.requireLink(c.bridge);
  if (created && undo) undo.push(() => deleteBridgeIfUnused(host, br));
  return { br, created };
}

/** Deletes a bridge this ADD created, unless some link is a port of it by now. */
function deleteBridgeIfUnused(host: Netlink, br: LinkInfo): void {
  if (host.listLinks().some((l) => l.master === br.index)) return;
  deleteLinkIfExists(host, br.name);
}

/**
 * Ensures the bridge exists (created with `mtu` when missing), is a bridge, is up, with
 * promiscuous mode when asked, `accept_ra=0` (the plugin owns its routes) and VLAN filtering
 * when `vlan`/`vlanTrunk` is set (switched on when the bridge already existed).
 *
 * @param undo when given, a bridge created here is removed on rollback (if it has no port)
 * @throws {CniError} 105 when a link that is not a bridge has the name; 2 when VLAN filtering
 *   is needed and the kernel lacks it
 */
export function ensureBridge(
  host: Netlink,
  c: BridgeConf,
  opts: HostOptions,
  undo?: Rollback,
): LinkInfo {
  let br = host.getLink(c.bridge);
  let created = false;
  if (!br) {
    ({ br, created } = createBridge(host, c, undo));
    // Pin the MAC: otherwise the bridge takes its lowest-numbered port's MAC, which changes
    // as pods come and go and breaks CHECK (the reference pins it only with isGateway).
    if (br.kind === "bridge") host.setMac(br.index, br.mac);
  }
  if (br.kind !== "bridge") {
    throw new CniError(Code.AlreadyExists, `"${c.bridge}" already exists but is not a bridge`);
  }
  if (!created && vlanField(c)) enableVlanFiltering(host, br, c);
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
  } catch (err) {
    throw kernelError(`Cannot attach "${veth.name}" to bridge "${br.name}"`, err);
  }
  // Before the port comes up, so no frame crosses it on the wrong VLAN.
  applyPortVlans(host, veth, c);
  try {
    host.setUp(veth.index);
  } catch (err) {
    throw kernelError(`Cannot attach "${veth.name}" to bridge "${br.name}"`, err);
  }
  trySysctl(`net/ipv6/conf/${veth.name}/accept_ra`, "0", opts.hostNs);
}

/** Creates the veth pair (undo pushed) and makes its host end a port of the bridge. */
function attachVeth(s: BridgeAdd, br: LinkInfo): { host: LinkInfo; cont: LinkInfo } {
  const veth = createVeth({
    host: s.host,
    cont: s.cont,
    contNs: s.contNs,
    ifname: s.ctx.env.ifname!,
    netnsPath: s.ctx.env.netns!,
    mtu: s.c.mtu,
    mac: requestedMac(s.c.raw, s.ctx),
    group: s.ctx.linkGroup,
  });
  s.undo.push(() => deleteLinkIfExists(s.host, veth.host.name));
  setupHostPort(s.host, veth.host, br, s.c, s.opts);
  return veth;
}

/**
 * `macspoofchk`: only the container's MAC may enter the bridge from its host veth. The undo
 * is pushed first so that a half-applied rule set is removed too.
 */
async function spoofCheck(s: BridgeAdd, veth: { host: LinkInfo; cont: LinkInfo }) {
  const names = spoofchkNames(s.ctx.env.containerId ?? "", s.ctx.env.ifname!);
  s.undo.push(() => teardownSpoofchk(s.opts, names));
  await setupSpoofchk(s.opts, names, veth.host.name, veth.cont.mac);
}

/**
 * The last step of ADD: the bridge's MAC may change when its first port joins or an address
 * is set, the host end's too (the reference refetches both); the conf's `dns` wins over IPAM's.
 */
function finishResult(s: BridgeAdd, result: CniResult, br: LinkInfo, hostVeth: LinkInfo) {
  result.interfaces![0].mac = s.host.requireLink(br.index).mac;
  result.interfaces![1].mac = s.host.requireLink(hostVeth.index).mac;
  const dns = s.c.dns ?? result.dns;
  if (dns) result.dns = dns;
  else delete result.dns;
}

/**
 * Attaches a container to a bridge: the whole ADD after parsing. `onBridge` runs right after
 * the bridge is ensured (vxlan enslaves its tunnel device there); what it pushes on `undo`
 * runs on failure before the bridge's own undo.
 *
 * @returns the canonical result: interfaces [bridge, host veth, container]
 */
export async function addBridgeAttachment(
  c: BridgeConf,
  ctx: DelegateContext,
  opts: HostOptions,
  onBridge?: (host: Netlink, br: LinkInfo, undo: Rollback) => void,
): Promise<CniResult> {
  requireAddable(c);
  // Before anything is touched: a refused conf must not create or change the bridge.
  requireVlanGateway(c);
  const ifname = ctx.env.ifname!;
  using contNs = openContainerNs(ctx.env.netns);
  using host = openHost(opts);
  using cont = Netlink.open(contNs);
  const s: BridgeAdd = { c, ctx, opts, host, cont, contNs, undo: new Rollback() };
  try {
    const br = ensureBridge(host, c, opts, s.undo);
    onBridge?.(host, br, s.undo);
    const veth = attachVeth(s, br);
    if (c.macspoofchk) await spoofCheck(s, veth);
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
    finishResult(s, result, br, veth.host);
    return result;
  } catch (err) {
    await s.undo.run();
    throw err;
  }
}

/**
 * DEL: deletes the container link (missing netns or link is fine), releases IPAM, removes the
 * masquerade and spoof-check rules. Runs every step even when one fails and throws the first
 * failure. Unlike the reference, the spoof-check rules go even when the netns is gone.
 */
export async function delBridgeAttachment(
  c: BridgeConf,
  ctx: DelegateContext,
  opts: HostOptions,
): Promise<void> {
  let first: unknown;
  // An IPAM whose DEL needs the link (DHCP's release goes out over it) runs first; the
  // reference deletes the link first and so never releases a DHCP lease (plugins#791).
  let ipamFirst = false;
  try {
    ipamFirst = c.ipamType !== undefined && ((await ctx.ipamTraits()).delNeedsLink ?? false);
    if (ipamFirst) await ctx.ipam("DEL");
  } catch (err) {
    first = err;
  }
  try {
    using ns = tryOpenNs(ctx.env.netns);
    if (ns) {
      using cont = Netlink.open(ns);
      deleteLinkIfExists(cont, ctx.env.ifname!);
    }
  } catch (err) {
    first ??= err;
  }
  try {
    if (c.ipamType && !ipamFirst) await ctx.ipam("DEL");
    if (c.ipamType && c.ipMasq) {
      const chain = await masqChain(c.name, ctx.env.containerId ?? "");
      // Neither iptables nor nft installed: no rule can exist.
      const backend = findMasqBackend();
      if (backend) await teardownMasq(opts, backend, chain);
    }
  } catch (err) {
    first ??= err;
  }
  try {
    if (c.macspoofchk) {
      await teardownSpoofchk(opts, spoofchkNames(ctx.env.containerId ?? "", ctx.env.ifname!));
    }
  } catch (err) {
    first ??= err;
  }
  if (first) throw first;
}

/** Builds a bridge delegate whose host side lives in `opts.hostNs` (tests) or here. */
export function makeBridge(opts: HostOptions = {}): BuiltinDelegate<BridgeConf> {
  return {
    type: "bridge",
    parseConf: (raw) => parseBridgeConf(raw),
    add: (c, ctx) => addBridgeAttachment(c, ctx, opts),
    del: (c, ctx) => delBridgeAttachment(c, ctx, opts),
    check: (c, ctx) => checkBridgeAttachment(c, ctx, opts),
    gc: (c, ctx) => forwardToIpam(c.ipamType, ctx, "GC"),
    status: (c, ctx) => forwardToIpam(c.ipamType, ctx, "STATUS"),
  };
}

/** The built-in `bridge` delegate (host side in the process's netns). */
export const bridge: BuiltinDelegate<BridgeConf> = makeBridge();
