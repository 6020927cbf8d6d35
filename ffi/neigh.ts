/**
 * Neighbour (ARP/NDP) entries and bridge/VXLAN forwarding database (FDB) entries
 * (RTM_NEWNEIGH / RTM_DELNEIGH / RTM_GETNEIGH), for VXLAN head-end replication and static
 * remotes as flannel programs them.
 *
 * @module
 */
import { afOf, familyOfAf, formatIpBytes, formatMac, ipBytes, macBytes } from "./_inet.ts";
import { MsgWriter, NLM_F, parseAttrs, viewOf } from "./_msg.ts";
import type { NlSocket } from "./_socket.ts";

const RTM_NEWNEIGH = 28;
const RTM_DELNEIGH = 29;
const RTM_GETNEIGH = 30;
const NDA = { DST: 1, LLADDR: 2 } as const;
const NUD_REACHABLE = 0x02;
const NUD_PERMANENT = 0x80;
const NTF_SELF = 0x02;
const NTF_MASTER = 0x04;
const AF_BRIDGE = 7;
const NDMSG_LEN = 12;

/** A neighbour (ARP/NDP) entry. */
export interface NeighEntry {
  /** The neighbour's IP address. */
  ip: string;
  /** Its link-layer address (absent for an entry still resolving or failed). */
  mac?: string;
  /** The ifindex of the device. */
  dev: number;
  family: 4 | 6;
  /** NUD_* state bits (0x80 permanent, 0x02 reachable, 0x20 failed...). */
  state: number;
  /** NUD_PERMANENT is set (a static entry, never aged out). */
  permanent: boolean;
}

/** An FDB entry. */
export interface FdbEntry {
  mac: string;
  /** The remote VTEP of a VXLAN entry. */
  dst?: string;
  /** The ifindex of the device (or bridge port) the entry belongs to. */
  dev: number;
}

/** Starts a neighbour message with its ndmsg. */
function neighMsg(
  type: number,
  flags: number,
  o: { family: number; dev: number; state?: number; ntf?: number },
): MsgWriter {
  const w = new MsgWriter(type, flags);
  const nd = w.struct(NDMSG_LEN);
  nd.setUint8(0, o.family);
  nd.setInt32(4, o.dev, true);
  nd.setUint16(8, o.state ?? 0, true);
  nd.setUint8(10, o.ntf ?? 0);
  return w;
}

/** NTF_SELF (the device's own table, `bridge fdb`'s default) unless self is false. */
const ntfOf = (self: boolean | undefined) => (self === false ? NTF_MASTER : NTF_SELF);

/** NUD_PERMANENT unless permanent is false (then NUD_REACHABLE, which ages out). */
const stateOf = (permanent: boolean | undefined) =>
  permanent === false ? NUD_REACHABLE : NUD_PERMANENT;

/**
 * Adds a neighbour (ARP/NDP) entry, permanent unless `permanent` is false.
 *
 * @throws {NetlinkError} kind "exists" when an entry for `ip` is already on `dev`
 */
export function addNeigh(
  sock: NlSocket,
  o: { dev: number; ip: string; mac: string; permanent?: boolean },
): void {
  const ip = ipBytes(o.ip);
  const flags = NLM_F.CREATE | NLM_F.EXCL | NLM_F.ACK;
  const w = neighMsg(RTM_NEWNEIGH, flags, {
    family: afOf(ip.family),
    dev: o.dev,
    state: stateOf(o.permanent),
  });
  w.bytes(NDA.DST, ip.bytes).bytes(NDA.LLADDR, macBytes(o.mac));
  sock.request(`add neighbour ${o.ip} lladdr ${o.mac} on #${o.dev}`, w);
}

/**
 * Deletes the neighbour entry for `ip` on `dev`.
 *
 * @throws {NetlinkError} kind "notfound" when there is none
 */
export function delNeigh(sock: NlSocket, o: { dev: number; ip: string }): void {
  const ip = ipBytes(o.ip);
  const w = neighMsg(RTM_DELNEIGH, NLM_F.ACK, { family: afOf(ip.family), dev: o.dev });
  w.bytes(NDA.DST, ip.bytes);
  sock.request(`delete neighbour ${o.ip} on #${o.dev}`, w);
}

/** Neighbour (ARP/NDP) entries of the socket's netns, of one device and family when given. */
export function listNeigh(sock: NlSocket, o: { dev?: number; family?: 4 | 6 } = {}): NeighEntry[] {
  const af = o.family === undefined ? 0 : afOf(o.family);
  const make = () => neighMsg(RTM_GETNEIGH, NLM_F.DUMP, { family: af, dev: 0 });
  const out: NeighEntry[] = [];
  for (const m of sock.dump("list neighbours", make)) {
    if (m.type !== RTM_NEWNEIGH) continue;
    const nd = viewOf(m.body);
    const family = familyOfAf(nd.getUint8(0));
    const index = nd.getInt32(4, true);
    if (!family || (o.family !== undefined && family !== o.family)) continue;
    if (o.dev !== undefined && index !== o.dev) continue;
    const a = parseAttrs(m.body, NDMSG_LEN);
    const dst = a.get(NDA.DST);
    if (!dst) continue;
    const state = nd.getUint16(8, true);
    const entry: NeighEntry = {
      ip: formatIpBytes(dst),
      dev: index,
      family,
      state,
      permanent: (state & NUD_PERMANENT) !== 0,
    };
    const ll = a.get(NDA.LLADDR);
    if (ll && ll.length === 6) entry.mac = formatMac(ll);
    out.push(entry);
  }
  return out;
}

/** Options of {@linkcode addFdb}. */
export interface AddFdbOptions {
  dev: number;
  mac: string;
  /** Remote VTEP address (VXLAN). */
  dst?: string;
  /** true or absent: the device's own table (NTF_SELF); false: its master's (NTF_MASTER). */
  self?: boolean;
  /** Default true (NUD_PERMANENT); false: NUD_REACHABLE. */
  permanent?: boolean;
  /** NLM_F_APPEND: add one more entry for the same MAC (all-zero MAC flood list). */
  append?: boolean;
}

/**
 * Adds an FDB entry, as `bridge fdb add` (or `append`) does.
 *
 * @throws {NetlinkError} kind "exists" for a duplicate (without append)
 */
export function addFdb(sock: NlSocket, o: AddFdbOptions): void {
  const flags = NLM_F.CREATE | NLM_F.ACK | (o.append ? NLM_F.APPEND : NLM_F.EXCL);
  const w = neighMsg(RTM_NEWNEIGH, flags, {
    family: AF_BRIDGE,
    dev: o.dev,
    state: stateOf(o.permanent),
    ntf: ntfOf(o.self),
  });
  w.bytes(NDA.LLADDR, macBytes(o.mac));
  if (o.dst !== undefined) w.bytes(NDA.DST, ipBytes(o.dst).bytes);
  const verb = o.append ? "append" : "add";
  sock.request(`${verb} fdb entry ${o.mac}${o.dst ? ` dst ${o.dst}` : ""} on #${o.dev}`, w);
}

/**
 * Deletes an FDB entry (the one with `dst` when given).
 *
 * @throws {NetlinkError} kind "notfound" when there is no such entry
 */
export function delFdb(
  sock: NlSocket,
  o: { dev: number; mac: string; dst?: string; self?: boolean },
): void {
  const w = neighMsg(RTM_DELNEIGH, NLM_F.ACK, {
    family: AF_BRIDGE,
    dev: o.dev,
    ntf: ntfOf(o.self),
  });
  w.bytes(NDA.LLADDR, macBytes(o.mac));
  if (o.dst !== undefined) w.bytes(NDA.DST, ipBytes(o.dst).bytes);
  sock.request(`delete fdb entry ${o.mac}${o.dst ? ` dst ${o.dst}` : ""} on #${o.dev}`, w);
}

/** FDB entries of the socket's netns, of one device when `dev` is given. */
export function listFdb(sock: NlSocket, dev?: number): FdbEntry[] {
  const make = () => neighMsg(RTM_GETNEIGH, NLM_F.DUMP, { family: AF_BRIDGE, dev: 0 });
  const out: FdbEntry[] = [];
  for (const m of sock.dump("list fdb entries", make)) {
    if (m.type !== RTM_NEWNEIGH) continue;
    const nd = viewOf(m.body);
    const index = nd.getInt32(4, true);
    if (nd.getUint8(0) !== AF_BRIDGE || (dev !== undefined && index !== dev)) continue;
    const a = parseAttrs(m.body, NDMSG_LEN);
    const ll = a.get(NDA.LLADDR);
    if (!ll) continue;
    const entry: FdbEntry = { mac: formatMac(ll), dev: index };
    const dst = a.get(NDA.DST);
    if (dst) entry.dst = formatIpBytes(dst);
    out.push(entry);
  }
  return out;
}
