/**
 * Links: read, delete (one by one or a whole IFLA_GROUP in one request) and change them.
 * Creating links is in link_add.ts.
 *
 * @module
 */
import { formatIpBytes, formatMac, macBytes } from "./_inet.ts";
import {
  type Attrs,
  attrS32,
  attrStr,
  attrU32,
  attrU8,
  MsgWriter,
  NLM_F,
  parseAttrs,
  viewOf,
} from "./_msg.ts";
import type { NlSocket } from "./_socket.ts";
import { ERRNO, kernelError } from "./errors.ts";
import type { NetNs } from "./netns.ts";

/** RTM_* link message types. */
export const RTM = { NEWLINK: 16, DELLINK: 17, GETLINK: 18, SETLINK: 19 } as const;
/** IFLA_* attributes (linux/if_link.h). */
export const IFLA = {
  ADDRESS: 1,
  IFNAME: 3,
  MTU: 4,
  LINK: 5,
  MASTER: 10,
  PROTINFO: 12,
  LINKINFO: 18,
  GROUP: 27,
  EXT_MASK: 29,
  NET_NS_FD: 28,
  LINK_NETNSID: 37,
} as const;
/** IFLA_INFO_* inside IFLA_LINKINFO. */
export const IFLA_INFO = { KIND: 1, DATA: 2 } as const;
const IFF_UP = 0x1;
const IFF_PROMISC = 0x100;
const AF_BRIDGE = 7;
const IFINFOMSG_LEN = 16;
const RTEXT_FILTER_SKIP_STATS = 1 << 3;
const IFLA_BRPORT = { MODE: 4, ISOLATED: 33 } as const;

/** A link as the kernel reports it. */
export interface LinkInfo {
  index: number;
  name: string;
  /** IFLA_INFO_KIND: "veth", "bridge", "vxlan", "macvlan", "dummy"...; absent for physical. */
  kind?: string;
  /** Lower-case `aa:bb:...` ("" when the link has no hardware address). */
  mac: string;
  mtu: number;
  /** IFF_UP is set (administratively up). */
  up: boolean;
  /** ifi_flags (IFF_*). */
  flags: number;
  /** The master's ifindex (a bridge port's bridge). */
  master?: number;
  group: number;
  /** IFLA_LINK: a veth's peer ifindex, a macvlan's lower link (may be in another netns). */
  peerIndex?: number;
  /** IFLA_LINK_NETNSID: the netns id `peerIndex` lives in, when not this netns. */
  linkNetnsId?: number;
  /** A VXLAN device's settings (kind "vxlan" only). */
  vxlan?: VxlanInfo;
}

/** What a VXLAN device was created with (IFLA_VXLAN_* of IFLA_INFO_DATA). */
export interface VxlanInfo {
  vni: number;
  /** UDP destination port. */
  port?: number;
  /** Local VTEP address. */
  local?: string;
  /** Underlay ifindex. */
  dev?: number;
  learning?: boolean;
}

const IFLA_VXLAN = { ID: 1, LINK: 3, LOCAL: 4, LEARNING: 7, PORT: 15, LOCAL6: 17 } as const;

function parseVxlanData(d: Attrs): VxlanInfo {
  const out: VxlanInfo = { vni: attrU32(d, IFLA_VXLAN.ID) ?? 0 };
  const port = d.get(IFLA_VXLAN.PORT);
  if (port && port.length >= 2) out.port = (port[0] << 8) | port[1]; // network order
  const local = d.get(IFLA_VXLAN.LOCAL) ?? d.get(IFLA_VXLAN.LOCAL6);
  if (local) out.local = formatIpBytes(local);
  const dev = attrU32(d, IFLA_VXLAN.LINK);
  if (dev) out.dev = dev;
  const learning = attrU8(d, IFLA_VXLAN.LEARNING);
  if (learning !== undefined) out.learning = learning !== 0;
  return out;
}

/** A link by name or ifindex. */
export type LinkRef = string | number;

/** Describes a link reference for messages: `"eth0"` or `#12`. */
export function refText(link: LinkRef): string {
  return typeof link === "number" ? `#${link}` : `"${link}"`;
}

/**
 * Starts a link message with its ifinfomsg: by ifindex when `link` is a number, else by
 * IFLA_IFNAME (the kernel looks the name up).
 */
export function linkMsg(
  type: number,
  flags: number,
  link: LinkRef | undefined,
  o: { family?: number; ifFlags?: number; change?: number } = {},
): MsgWriter {
  const w = new MsgWriter(type, flags);
  const ifi = w.struct(IFINFOMSG_LEN);
  ifi.setUint8(0, o.family ?? 0);
  ifi.setInt32(4, typeof link === "number" ? link : 0, true);
  ifi.setUint32(8, o.ifFlags ?? 0, true);
  ifi.setUint32(12, o.change ?? 0, true);
  if (typeof link === "string") w.str(IFLA.IFNAME, link);
  return w;
}

/** Decodes an RTM_NEWLINK message body. */
export function parseLink(body: Uint8Array): LinkInfo {
  const ifi = viewOf(body);
  const a = parseAttrs(body, IFINFOMSG_LEN);
  const flags = ifi.getUint32(8, true);
  const index = ifi.getInt32(4, true);
  const info: LinkInfo = {
    index,
    name: attrStr(a, IFLA.IFNAME) ?? "",
    mac: a.has(IFLA.ADDRESS) ? formatMac(a.get(IFLA.ADDRESS)!) : "",
    mtu: attrU32(a, IFLA.MTU) ?? 0,
    up: (flags & IFF_UP) !== 0,
    flags,
    group: attrU32(a, IFLA.GROUP) ?? 0,
  };
  const linkinfo = a.get(IFLA.LINKINFO);
  if (linkinfo) {
    const li = parseAttrs(linkinfo);
    const kind = attrStr(li, IFLA_INFO.KIND);
    if (kind) info.kind = kind;
    const data = li.get(IFLA_INFO.DATA);
    if (kind === "vxlan" && data) info.vxlan = parseVxlanData(parseAttrs(data));
  }
  const master = attrU32(a, IFLA.MASTER);
  if (master) info.master = master;
  const peer = attrU32(a, IFLA.LINK) ?? inferredLink(info.kind, index);
  if (peer) info.peerIndex = peer; // 0: a veth whose peer is gone
  const nsid = attrS32(a, IFLA.LINK_NETNSID);
  if (nsid !== undefined) info.linkNetnsId = nsid;
  return info;
}

/** Kinds whose IFLA_LINK names a peer or lower device (not the link itself). */
const LOWER_KINDS = new Set(["veth", "macvlan", "macvtap", "ipvlan", "ipvtap", "vlan"]);

/**
 * The kernel leaves IFLA_LINK out when it equals the link's own ifindex, which happens for
 * these kinds when the peer or lower device has the same ifindex in another netns.
 */
function inferredLink(kind: string | undefined, index: number): number | undefined {
  return kind && LOWER_KINDS.has(kind) ? index : undefined;
}

/**
 * One link, or null when it does not exist.
 *
 * @throws {NetlinkError} for failures other than "no such device"
 */
export function getLink(sock: NlSocket, link: LinkRef): LinkInfo | null {
  const op = `get link ${refText(link)}`;
  const w = linkMsg(RTM.GETLINK, NLM_F.ACK, link).u32(IFLA.EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  const r = sock.requestOrErrno(op, w);
  if (typeof r === "number") {
    if (r === ERRNO.ENODEV || r === ERRNO.ENOENT) return null;
    throw kernelError(op, r);
  }
  const m = r.find((x) => x.type === RTM.NEWLINK);
  return m ? parseLink(m.body) : null;
}

/** Every link of the socket's netns. */
export function listLinks(sock: NlSocket): LinkInfo[] {
  const make = () =>
    linkMsg(RTM.GETLINK, NLM_F.DUMP, undefined).u32(IFLA.EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  return sock.dump("list links", make)
    .filter((m) => m.type === RTM.NEWLINK)
    .map((m) => parseLink(m.body));
}

/**
 * Deletes one link (a veth's peer goes with it).
 *
 * @throws {NetlinkError} kind "notfound" when it does not exist
 */
export function deleteLink(sock: NlSocket, link: LinkRef): void {
  sock.request(`delete link ${refText(link)}`, linkMsg(RTM.DELLINK, NLM_F.ACK, link));
}

/**
 * Deletes one link when it exists, without building an error for a missing one (the common
 * case after a group delete).
 *
 * @returns whether a link was deleted
 * @throws {NetlinkError} for failures other than "no such device"
 */
export function deleteLinkIfExists(sock: NlSocket, link: LinkRef): boolean {
  const op = `delete link ${refText(link)}`;
  const r = sock.requestOrErrno(op, linkMsg(RTM.DELLINK, NLM_F.ACK, link));
  if (typeof r !== "number") return true;
  if (r === ERRNO.ENODEV || r === ERRNO.ENOENT) return false;
  throw kernelError(op, r);
}

/**
 * Deletes every link of an IFLA_GROUP in ONE RTM_DELLINK (ifindex 0 + IFLA_GROUP): the kernel
 * then waits for one RCU grace period for all of them instead of one per link.
 *
 * @throws {RangeError} for group 0 (the default group: every link, loopback included)
 * @throws {NetlinkError} kind "notfound" when no link is in the group
 */
export function deleteGroup(sock: NlSocket, group: number): void {
  sock.request(`delete link group ${group}`, groupDelMsg(group));
}

/**
 * {@linkcode deleteGroup} with the kernel's work (and its RCU wait) on a worker thread, so
 * that concurrent teardowns overlap. The socket must not be used until the promise settles.
 *
 * @throws {RangeError} for group 0 (synchronously checked, rejected promise)
 * @throws {NetlinkError} kind "notfound" when no link is in the group
 */
export async function deleteGroupAsync(sock: NlSocket, group: number): Promise<void> {
  await sock.requestAsync(`delete link group ${group}`, groupDelMsg(group));
}

/** RTM_DELLINK for ifindex 0 + IFLA_GROUP `group`; groups 1 to 2^32-1 only. */
function groupDelMsg(group: number): MsgWriter {
  if (!Number.isInteger(group) || group <= 0 || group > 0xffffffff) {
    throw new RangeError(`Cannot delete link group ${group}: only groups 1 to 4294967295`);
  }
  return linkMsg(RTM.DELLINK, NLM_F.ACK, undefined).u32(IFLA.GROUP, group);
}

/** Sends an RTM_SETLINK for `link` with the attributes `fill` adds. */
function setLink(
  sock: NlSocket,
  op: string,
  link: LinkRef,
  fill: (w: MsgWriter) => void,
  o: { ifFlags?: number; change?: number } = {},
): void {
  const w = linkMsg(RTM.SETLINK, NLM_F.ACK, link, o);
  fill(w);
  sock.request(`${op}`, w);
}

/** Sets IFF_UP. */
export function setUp(sock: NlSocket, link: LinkRef): void {
  setLink(sock, `set link ${refText(link)} up`, link, () => {}, {
    ifFlags: IFF_UP,
    change: IFF_UP,
  });
}

/** Clears IFF_UP. */
export function setDown(sock: NlSocket, link: LinkRef): void {
  setLink(sock, `set link ${refText(link)} down`, link, () => {}, { ifFlags: 0, change: IFF_UP });
}

/** Sets or clears IFF_PROMISC. */
export function setPromisc(sock: NlSocket, link: LinkRef, on: boolean): void {
  const op = `set link ${refText(link)} promisc ${on ? "on" : "off"}`;
  setLink(sock, op, link, () => {}, { ifFlags: on ? IFF_PROMISC : 0, change: IFF_PROMISC });
}

/** Sets the MTU. */
export function setMtu(sock: NlSocket, link: LinkRef, mtu: number): void {
  setLink(sock, `set link ${refText(link)} mtu ${mtu}`, link, (w) => w.u32(IFLA.MTU, mtu));
}

/** Sets the hardware address. */
export function setMac(sock: NlSocket, link: LinkRef, mac: string): void {
  const bytes = macBytes(mac);
  setLink(
    sock,
    `set link ${refText(link)} address ${mac}`,
    link,
    (w) => w.bytes(IFLA.ADDRESS, bytes),
  );
}

/** Puts the link in an IFLA_GROUP. */
export function setGroup(sock: NlSocket, link: LinkRef, group: number): void {
  setLink(sock, `set link ${refText(link)} group ${group}`, link, (w) => w.u32(IFLA.GROUP, group));
}

/** Enslaves the link to `master` (a bridge's ifindex), or frees it with null. */
export function setMaster(sock: NlSocket, link: LinkRef, master: number | null): void {
  const op = master === null
    ? `set link ${refText(link)} nomaster`
    : `set link ${refText(link)} master #${master}`;
  setLink(sock, op, link, (w) => w.u32(IFLA.MASTER, master ?? 0));
}

/** Moves the link into another netns (it disappears from this one). */
export function setNetns(sock: NlSocket, link: LinkRef, ns: NetNs): void {
  const op = `move link ${refText(link)} to netns "${ns.path}"`;
  setLink(sock, op, link, (w) => w.u32(IFLA.NET_NS_FD, ns.fd));
}

/**
 * Renames a link (the kernel wants it down). A name is resolved to its ifindex first,
 * because IFLA_IFNAME then carries the new name.
 */
export function rename(sock: NlSocket, link: LinkRef, newName: string): void {
  const op = `rename link ${refText(link)} to "${newName}"`;
  const index = typeof link === "number" ? link : requireIndex(sock, link, op);
  setLink(sock, op, index, (w) => w.str(IFLA.IFNAME, newName));
}

/**
 * Sets bridge port flags on a link enslaved to a bridge (as `bridge link set` does: an
 * AF_BRIDGE RTM_SETLINK with a nested IFLA_PROTINFO).
 */
export function setBridgePort(
  sock: NlSocket,
  link: LinkRef,
  o: { hairpin?: boolean; isolated?: boolean },
): void {
  const op = `set bridge port options on ${refText(link)}`;
  if (o.hairpin === undefined && o.isolated === undefined) return;
  const index = typeof link === "number" ? link : requireIndex(sock, link, op);
  const w = linkMsg(RTM.SETLINK, NLM_F.ACK, index, { family: AF_BRIDGE });
  w.begin(IFLA.PROTINFO);
  if (o.hairpin !== undefined) w.u8(IFLA_BRPORT.MODE, o.hairpin ? 1 : 0);
  if (o.isolated !== undefined) w.u8(IFLA_BRPORT.ISOLATED, o.isolated ? 1 : 0);
  w.end();
  sock.request(op, w);
}

/**
 * The ifindex of a link name.
 *
 * @throws {NetlinkError} kind "notfound" (with `op` in its message) when it does not exist
 */
export function requireIndex(sock: NlSocket, name: string, op: string): number {
  const w = linkMsg(RTM.GETLINK, NLM_F.ACK, name).u32(IFLA.EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  const m = sock.request(op, w).find((x) => x.type === RTM.NEWLINK);
  if (!m) throw new Error(`Cannot ${op}: the kernel sent no link`);
  return viewOf(m.body).getInt32(4, true);
}
