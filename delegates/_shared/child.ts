/**
 * The flow macvlan and ipvlan share: a child link of `master` created directly in the
 * container netns under a temporary name, renamed to CNI_IFNAME there, then addressed from
 * IPAM (reference plugins/main/macvlan and plugins/main/ipvlan).
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import type { CniDns, CniResult } from "../../conf/types.ts";
import type { BuiltinDelegate, DelegateContext } from "../types.ts";
import { type LinkInfo, Netlink, type NetNs } from "../../ffi/mod.ts";
import { beginCheck, checkFailed, checkL3 } from "./check.ts";
import { confBool, confDns, confInt, confLinkName, confString, ipamType } from "./conf_read.ts";
import { configureIface } from "./iface.ts";
import {
  deleteLinkIfExists,
  type HostOptions,
  kernelError,
  namedOrDefaultLink,
  openContainerNs,
  openHost,
  Rollback,
  tryOpenNs,
  trySysctl,
} from "./link_common.ts";
import { renameInContainer, requireFreeIfname, tempLinkName } from "./veth.ts";
import { forwardToIpam } from "./ipam_forward.ts";

type Obj = Record<string, unknown>;

/** The fields macvlan and ipvlan share. */
export interface ChildConf {
  /** The parent link; default: the default-route interface. */
  master?: string;
  mtu?: number;
  /** The master lives in the container netns (not the host's). */
  linkInContainer: boolean;
  ipamType?: string;
  dns?: CniDns;
  raw: Obj;
}

/** What creates one kind of child link (the rest of the flow is shared). */
export interface ChildKind<C extends ChildConf> {
  kind: "macvlan" | "ipvlan";
  /**
   * Creates the link `name` on `master` (in `ns` when given, else in `nl`'s netns), in
   * `ctx.linkGroup` from the start (no separate step that could fail after the rename).
   */
  create(nl: Netlink, c: C, ctx: DelegateContext, name: string, master: number, ns?: NetNs): void;
  /** The L3 config to apply, or undefined for an L2-only link (pushes its own undo steps). */
  l3(c: C, ctx: DelegateContext, undo: Rollback): Promise<CniResult | undefined>;
}

/**
 * Parses the shared fields.
 *
 * @throws {CniError} code 7 naming the field and value
 */
export function parseChildConf(raw: Obj): ChildConf {
  return {
    master: confLinkName(raw, "master"),
    mtu: confInt(raw, "mtu", 0, 65535) || undefined,
    linkInContainer: confBool(raw, "linkInContainer"),
    ipamType: ipamType(raw),
    dns: confDns(raw),
    raw,
  };
}

/** Parses `mode` against its allowed values (missing → the first). */
export function parseMode<M extends string>(raw: Obj, modes: readonly M[]): M {
  const mode = confString(raw, "mode") ?? modes[0];
  if (!(modes as readonly string[]).includes(mode)) {
    throw new CniError(
      Code.InvalidConfig,
      `Invalid "mode": "${mode}" is not one of ${modes.join(", ")}`,
    );
  }
  return mode as M;
}

/**
 * The master link: `master`, else the default-route interface of the netns it lives in;
 * `mtu` must not exceed its MTU.
 *
 * @throws {CniError} code 7 when there is none, it is missing, or the MTU is too large
 */
export function resolveMaster(nl: Netlink, c: ChildConf): LinkInfo {
  const m = namedOrDefaultLink(nl, "master", c.master);
  if (c.mtu && c.mtu > m.mtu) {
    throw new CniError(Code.InvalidConfig, `Invalid "mtu": ${c.mtu} exceeds the master's ${m.mtu}`);
  }
  return m;
}

function createChild<C extends ChildConf>(
  k: ChildKind<C>,
  c: C,
  ctx: DelegateContext,
  nls: { host: Netlink; cont: Netlink; contNs: NetNs },
): LinkInfo {
  const parentNl = c.linkInContainer ? nls.cont : nls.host;
  const master = resolveMaster(parentNl, c);
  requireFreeIfname(nls.cont, ctx.env.ifname!, ctx.env.netns!);
  // A temporary name: the final name may collide with a host link before the move.
  const tmp = tempLinkName();
  try {
    k.create(parentNl, c, ctx, tmp, master.index, c.linkInContainer ? undefined : nls.contNs);
  } catch (err) {
    throw kernelError(`Cannot create ${k.kind} on "${master.name}"`, err);
  }
  try {
    return renameInContainer(nls.cont, tmp, ctx.env.ifname!);
  } catch (err) {
    deleteLinkIfExists(nls.cont, tmp);
    throw err;
  }
}

/**
 * The ADD of a child link: create and rename it, apply the L3 config (addresses on
 * interface 0) or bring it up, undo everything on failure.
 *
 * @returns interfaces [link] with ips' interface 0
 */
export async function addChildAttachment<C extends ChildConf>(
  k: ChildKind<C>,
  c: C,
  ctx: DelegateContext,
  opts: HostOptions,
): Promise<CniResult> {
  const ifname = ctx.env.ifname!;
  using contNs = openContainerNs(ctx.env.netns);
  using host = openHost(opts);
  using cont = Netlink.open(contNs);
  const undo = new Rollback();
  try {
    const link = createChild(k, c, ctx, { host, cont, contNs });
    undo.push(() => deleteLinkIfExists(cont, ifname));
    const result: CniResult = {
      cniVersion: "1.1.0",
      interfaces: [{ name: ifname, mac: link.mac, sandbox: ctx.env.netns }],
    };
    const l3 = await k.l3(c, ctx, undo);
    if (l3) {
      result.ips = (l3.ips ?? []).map((ip) => ({ ...ip, interface: 0 }));
      result.routes = l3.routes;
      trySysctl(`net/ipv4/conf/${ifname}/arp_notify`, "1", contNs);
      configureIface(cont, contNs, ifname, result);
    } else {
      cont.setUp(link.index);
    }
    const dns = c.dns ?? l3?.dns;
    if (dns) result.dns = dns;
    return result;
  } catch (err) {
    await undo.run();
    throw err;
  }
}

/** DEL: release IPAM first (the reference's order), then delete the link (gone is fine). */
export async function delChildAttachment(c: ChildConf, ctx: DelegateContext): Promise<void> {
  if (c.ipamType) await ctx.ipam("DEL");
  using ns = tryOpenNs(ctx.env.netns);
  if (!ns) return;
  using cont = Netlink.open(ns);
  deleteLinkIfExists(cont, ctx.env.ifname!);
}

/** CHECK: the link exists in the container with its kind and MAC; addresses and routes. */
export async function checkChildAttachment(
  kind: string,
  c: ChildConf,
  ctx: DelegateContext,
): Promise<void> {
  const { prev, iface: want } = await beginCheck(c.ipamType, ctx);
  using ns = openContainerNs(ctx.env.netns);
  using cont = Netlink.open(ns);
  const link = cont.getLink(want.name);
  if (!link) throw checkFailed(`Container interface "${want.name}" not found`);
  if (link.kind !== kind) throw checkFailed(`Container interface "${want.name}" is not a ${kind}`);
  if (want.mac && want.mac !== link.mac) {
    throw checkFailed(
      `Container interface "${want.name}" MAC ${link.mac} does not match ${want.mac}`,
    );
  }
  checkL3(cont, want.name, prev);
}

/**
 * Builds a child-link delegate (macvlan, ipvlan): the shared fields plus `mode` from
 * `modes` (the first is the default). `prepare` adjusts the parsed conf for ADD (ipvlan takes
 * a chained master from prevResult).
 */
export function makeChildDelegate<C extends ChildConf & { mode: string }>(
  k: ChildKind<C>,
  modes: readonly C["mode"][],
  opts: HostOptions,
  prepare: (c: C, ctx: DelegateContext) => C = (c) => c,
): BuiltinDelegate<C> {
  return {
    type: k.kind,
    parseConf: (raw) => ({ ...parseChildConf(raw), mode: parseMode(raw, modes) }) as C,
    add: (c, ctx) => addChildAttachment(k, prepare(c, ctx), ctx, opts),
    del: (c, ctx) => delChildAttachment(c, ctx),
    check: (c, ctx) => checkChildAttachment(k.kind, c, ctx),
    gc: (c, ctx) => forwardToIpam(c.ipamType, ctx, "GC"),
    status: (c, ctx) => forwardToIpam(c.ipamType, ctx, "STATUS"),
  };
}
