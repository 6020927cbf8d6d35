/**
 * The built-in `vxlan` delegate (podplex's own; the reference plugins have none, see
 * containernetworking/plugins#1062): one L2 overlay segment per VNI. A bridge (`bridge`,
 * default `vxbr<vni>`) holds a VXLAN device (`vxlanName`, default `vx<vni>`) with learning off
 * and head-end replication to every remote VTEP through all-zero-MAC FDB entries (what
 * `bridge fdb append 00:00:00:00:00:00 dst <ip> dev vx<vni>` does). Pods attach by veth
 * exactly as with `bridge`, with the same result shape.
 *
 * MTU: underlay MTU − 50 for an IPv4 underlay (20 IP + 8 UDP + 8 VXLAN + 14 inner Ethernet),
 * − 70 for IPv6; the VXLAN device, the bridge and the pod side all get it.
 *
 * Remote VTEPs come from a {@linkcode RemoteSource}; the static `remotes` list is the one
 * built in (etcd discovery plugs in later through the same interface).
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import { parseIp } from "../../conf/ip.ts";
import type { CniResult } from "../../conf/types.ts";
import type { BuiltinDelegate, DelegateContext } from "../types.ts";
import type { LinkInfo, Netlink } from "../../ffi/mod.ts";
import { checkFailed } from "../_shared/check.ts";
import { familyOf } from "../_shared/cidr.ts";
import { confInt, confLinkName, confString } from "../_shared/conf_read.ts";
import {
  deleteLinkIfExists,
  type HostOptions,
  kernelError,
  namedOrDefaultLink,
  openHost,
  type Rollback,
} from "../_shared/link_common.ts";
import {
  addBridgeAttachment,
  type BridgeConf,
  checkBridgeAttachment,
  delBridgeAttachment,
  parseBridgeConf,
} from "./bridge.ts";
import { forwardToIpam } from "../_shared/ipam_forward.ts";

type Obj = Record<string, unknown>;

/** A VXLAN segment as the sources of its remote VTEPs see it. */
export interface VxlanSegment {
  /** The VXLAN network identifier. */
  vni: number;
  /** Remote VTEP addresses of the static list. */
  remotes: string[];
}

/** The parsed `vxlan` config: every bridge field plus the tunnel's. */
export interface VxlanConf extends BridgeConf, VxlanSegment {
  vxlanName: string;
  /** UDP port (default 4789, IANA's; flannel uses 8472). */
  port: number;
  /** Underlay device name. */
  dev?: string;
  /** Underlay source address (also picks the underlay device when `dev` is not set). */
  local?: string;
  /** The `mtu` field as written (the effective MTU is computed from the underlay). */
  mtuSet?: number;
}

/** Where the remote VTEPs of a segment come from. */
export interface RemoteSource {
  /** The underlay addresses of every other VTEP of `conf.vni`. */
  list(segment: VxlanSegment): Promise<string[]>;
}

/** The static `remotes` list of the config. */
export const staticRemotes: RemoteSource = {
  list: (conf) => Promise.resolve(conf.remotes),
};

const ZERO_MAC = "00:00:00:00:00:00";

/**
 * Validates and defaults a vxlan config.
 *
 * @throws {CniError} code 7 naming the field and value
 */
export function parseVxlanConf(raw: Obj): VxlanConf {
  const vni = confInt(raw, "vni", 1, 0xffffff);
  if (vni === undefined) throw new CniError(Code.InvalidConfig, `Missing "vni": it is required`);
  const remotes = raw.remotes ?? [];
  if (!Array.isArray(remotes) || remotes.some((r) => typeof r !== "string")) {
    throw new CniError(
      Code.InvalidConfig,
      `Invalid "remotes": ${JSON.stringify(remotes)} is not a list of IP addresses`,
    );
  }
  for (const r of remotes) parseIp(r, "remotes");
  const local = confString(raw, "local");
  if (local) parseIp(local, "local");
  const b = parseBridgeConf(raw, `vxbr${vni}`);
  return {
    ...b,
    vni,
    vxlanName: confLinkName(raw, "vxlanName") ?? `vx${vni}`,
    port: confInt(raw, "port", 1, 65535) ?? 4789,
    dev: confLinkName(raw, "dev"),
    local,
    remotes: remotes as string[],
    mtuSet: b.mtu,
  };
}

/** The underlay link: `dev`, else the link holding `local`, else the default-route one. */
function resolveUnderlay(host: Netlink, c: VxlanConf): LinkInfo {
  let name = c.dev;
  if (!name && c.local) {
    const want = parseIp(c.local);
    const a = host.listAddrs().find((x) => {
      const ip = parseIp(x.address);
      return ip.family === want.family && ip.value === want.value;
    });
    if (!a) {
      throw new CniError(Code.InvalidConfig, `Invalid "local": "${c.local}" is not on any link`);
    }
    name = host.getLink(a.index)?.name;
  }
  return namedOrDefaultLink(host, "dev", name);
}

/** The MTU of the segment: underlay − 50 (IPv4) or − 70 (IPv6), or `mtu` when lower. */
export function segmentMtu(underlayMtu: number, c: VxlanConf, remotes: string[]): number {
  const v6 = familyOf(c.local ?? remotes[0] ?? "0.0.0.0") === 6;
  const max = underlayMtu - (v6 ? 70 : 50);
  if (c.mtuSet && c.mtuSet > max) {
    throw new CniError(
      Code.InvalidConfig,
      `Invalid "mtu": ${c.mtuSet} exceeds the underlay's ${underlayMtu} minus the VXLAN overhead`,
    );
  }
  return c.mtuSet ?? max;
}

/**
 * Creates the VXLAN device when missing, enslaves it to the bridge, brings it up. A device
 * created here is deleted on rollback (before the bridge's undo, which keeps a bridge with
 * ports) unless another ADD's port joined the bridge meanwhile.
 */
function ensureVxlanDevice(
  host: Netlink,
  c: VxlanConf,
  underlay: LinkInfo,
  br: LinkInfo,
  undo: Rollback,
): LinkInfo {
  let vx = host.getLink(c.vxlanName);
  try {
    if (!vx) {
      host.addVxlan({
        name: c.vxlanName,
        vni: c.vni,
        port: c.port,
        local: c.local,
        dev: underlay.index,
        learning: false,
        mtu: c.mtu,
      });
      undo.push(() => deleteVxlanIfAlone(host, c.vxlanName, br));
      vx = host.requireLink(c.vxlanName);
    }
    if (vx.kind !== "vxlan") {
      throw new CniError(
        Code.AlreadyExists,
        `"${c.vxlanName}" already exists but is not a vxlan device`,
      );
    }
    if (vx.master !== br.index) host.setMaster(vx.index, br.index);
    if (!vx.up) host.setUp(vx.index);
  } catch (err) {
    throw kernelError(`Cannot set up vxlan device "${c.vxlanName}"`, err);
  }
  return vx;
}

/** Deletes the VXLAN device unless the bridge has a port besides it (another pod's). */
function deleteVxlanIfAlone(host: Netlink, name: string, br: LinkInfo): void {
  if (host.listLinks().some((l) => l.master === br.index && l.name !== name)) return;
  deleteLinkIfExists(host, name);
}

/**
 * Makes the head-end replication list equal `remotes`: one all-zero-MAC FDB entry per remote
 * (appended: several entries share the MAC), stale ones removed.
 */
export function syncRemotes(host: Netlink, vx: LinkInfo, remotes: string[]): void {
  const have = host.listFdb(vx.index).filter((e) => e.mac === ZERO_MAC && e.dst);
  const key = (ip: string) => parseIp(ip).value.toString() + familyOf(ip);
  const want = new Set(remotes.map(key));
  const present = new Set(have.map((e) => key(e.dst!)));
  try {
    for (const e of have) {
      if (!want.has(key(e.dst!))) host.delFdb({ dev: vx.index, mac: ZERO_MAC, dst: e.dst });
    }
    for (const r of remotes) {
      if (present.has(key(r))) continue;
      host.addFdb({
        dev: vx.index,
        mac: ZERO_MAC,
        dst: r,
        self: true,
        permanent: true,
        append: true,
      });
    }
  } catch (err) {
    throw kernelError(`Cannot program remote VTEPs on "${vx.name}"`, err);
  }
}

async function add(c: VxlanConf, ctx: DelegateContext, opts: HostOptions, src: RemoteSource) {
  const local = c.local ? parseIp(c.local) : undefined;
  // A node may find itself in a shared list: never replicate to our own address.
  const remotes = (await src.list(c)).filter((r) => {
    const ip = parseIp(r);
    return !local || ip.family !== local.family || ip.value !== local.value;
  });
  let underlay: LinkInfo;
  {
    using host = openHost(opts);
    underlay = resolveUnderlay(host, c);
  }
  const conf: VxlanConf = { ...c, mtu: segmentMtu(underlay.mtu, c, remotes) };
  return await addBridgeAttachment(conf, ctx, opts, (host, br, undo) => {
    const vx = ensureVxlanDevice(host, conf, underlay, br, undo);
    syncRemotes(host, vx, remotes);
  });
}

async function check(c: VxlanConf, ctx: DelegateContext, opts: HostOptions): Promise<void> {
  await checkBridgeAttachment(c, ctx, opts);
  using host = openHost(opts);
  const vx = host.getLink(c.vxlanName);
  const br = host.getLink(c.bridge);
  if (!vx || vx.kind !== "vxlan") throw checkFailed(`VXLAN device "${c.vxlanName}" not found`);
  if (!br || vx.master !== br.index) {
    throw checkFailed(`VXLAN device "${c.vxlanName}" is not a port of bridge "${c.bridge}"`);
  }
}

/**
 * Builds a vxlan delegate whose host side lives in `opts.hostNs` (tests) or here, with remote
 * VTEPs from `opts.remotes` (default: the config's static `remotes`).
 */
export function makeVxlan(
  opts: HostOptions & { remotes?: RemoteSource } = {},
): BuiltinDelegate<VxlanConf> {
  const src = opts.remotes ?? staticRemotes;
  return {
    type: "vxlan",
    parseConf: parseVxlanConf,
    add: (c, ctx): Promise<CniResult> => add(c, ctx, opts, src),
    del: (c, ctx) => delBridgeAttachment(c, ctx, opts),
    check: (c, ctx) => check(c, ctx, opts),
    gc: (c, ctx) => forwardToIpam(c.ipamType, ctx, "GC"),
    status: (c, ctx) => forwardToIpam(c.ipamType, ctx, "STATUS"),
  };
}

/** The built-in `vxlan` delegate. */
export const vxlan: BuiltinDelegate<VxlanConf> = makeVxlan();
