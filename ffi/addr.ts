/**
 * Interface addresses (RTM_NEWADDR / RTM_DELADDR / RTM_GETADDR).
 *
 * @module
 */
import { afOf, cidrBytes, familyOfAf, formatIpBytes } from "./_inet.ts";
import { MsgWriter, NLM_F, parseAttrs, viewOf } from "./_msg.ts";
import type { NlSocket } from "./_socket.ts";
import { type LinkRef, refText, requireIndex } from "./link.ts";

const RTM_NEWADDR = 20;
const RTM_DELADDR = 21;
const RTM_GETADDR = 22;
const IFA = { ADDRESS: 1, LOCAL: 2, BROADCAST: 4 } as const;
const IFA_F_NODAD = 0x02;
const IFADDRMSG_LEN = 8;

/** An address on a link. */
export interface AddrInfo {
  index: number;
  /** The address (`10.0.0.2`, `fd00::2`). */
  address: string;
  prefixLen: number;
  family: 4 | 6;
  /** `address/prefixLen`, e.g. `10.0.0.2/24`. */
  cidr: string;
  /** RT_SCOPE_*: 0 universe, 253 link, 254 host. */
  scope: number;
}

/** Starts an address message for `index` and `cidr`, with the address attributes. */
function addrMsg(type: number, flags: number, index: number, cidr: string, ifaFlags = 0) {
  const c = cidrBytes(cidr);
  const w = new MsgWriter(type, flags);
  const ifa = w.struct(IFADDRMSG_LEN);
  ifa.setUint8(0, afOf(c.family));
  ifa.setUint8(1, c.prefixLen);
  ifa.setUint8(2, ifaFlags);
  ifa.setUint32(4, index, true);
  w.bytes(IFA.LOCAL, c.bytes).bytes(IFA.ADDRESS, c.bytes);
  return { w, c };
}

/** An ifindex for a link reference (names cost one lookup). */
function indexOf(sock: NlSocket, link: LinkRef, op: string): number {
  return typeof link === "number" ? link : requireIndex(sock, link, op);
}

/**
 * Adds an address. IPv4 addresses get the network's broadcast address (as the reference
 * plugins' netlink library sets it) unless the prefix is /31 or /32.
 *
 * @param cidr `10.0.0.2/24` or `fd00::2/64`
 * @param o noDad: skip IPv6 duplicate address detection (IFA_F_NODAD)
 * @throws {NetlinkError} kind "exists" when the address is already there
 */
export function addAddr(
  sock: NlSocket,
  link: LinkRef,
  cidr: string,
  o: { noDad?: boolean } = {},
): void {
  const op = `add address ${cidr} to ${refText(link)}`;
  const index = indexOf(sock, link, op);
  const flags = NLM_F.CREATE | NLM_F.EXCL | NLM_F.ACK;
  const { w, c } = addrMsg(RTM_NEWADDR, flags, index, cidr, o.noDad ? IFA_F_NODAD : 0);
  if (c.family === 4 && c.prefixLen < 31) w.bytes(IFA.BROADCAST, c.last);
  sock.request(op, w);
}

/**
 * Removes an address.
 *
 * @throws {NetlinkError} kind "notfound" when the link or the address is not there
 */
export function delAddr(sock: NlSocket, link: LinkRef, cidr: string): void {
  const op = `delete address ${cidr} from ${refText(link)}`;
  const index = indexOf(sock, link, op);
  sock.request(op, addrMsg(RTM_DELADDR, NLM_F.ACK, index, cidr).w);
}

/** Decodes an RTM_NEWADDR body; undefined for families other than IPv4/IPv6. */
function parseAddr(body: Uint8Array): AddrInfo | undefined {
  const v = viewOf(body);
  const family = familyOfAf(v.getUint8(0));
  if (!family) return undefined;
  const a = parseAttrs(body, IFADDRMSG_LEN);
  // IFA_LOCAL is the local address; IFA_ADDRESS is the peer on point-to-point links.
  const raw = a.get(IFA.LOCAL) ?? a.get(IFA.ADDRESS);
  if (!raw) return undefined;
  const address = formatIpBytes(raw);
  const prefixLen = v.getUint8(1);
  return {
    index: v.getUint32(4, true),
    address,
    prefixLen,
    family,
    cidr: `${address}/${prefixLen}`,
    scope: v.getUint8(3),
  };
}

/**
 * The addresses of the socket's netns, of one link and/or one family when given.
 *
 * @throws {NetlinkError} kind "notfound" when `link` is a name that does not exist
 */
export function listAddrs(sock: NlSocket, link?: LinkRef, family?: 4 | 6): AddrInfo[] {
  const index = link === undefined
    ? undefined
    : indexOf(sock, link, `list addresses of ${refText(link)}`);
  const make = () => {
    const w = new MsgWriter(RTM_GETADDR, NLM_F.DUMP);
    w.struct(IFADDRMSG_LEN).setUint8(0, family ? afOf(family) : 0);
    return w;
  };
  const out: AddrInfo[] = [];
  for (const m of sock.dump("list addresses", make)) {
    if (m.type !== RTM_NEWADDR) continue;
    const info = parseAddr(m.body);
    if (!info) continue;
    if (index !== undefined && info.index !== index) continue;
    if (family !== undefined && info.family !== family) continue;
    out.push(info);
  }
  return out;
}
