/**
 * DHCPv4 messages (RFC 2131) and their options (RFC 2132, 3442 classless static routes,
 * 3397 domain search, 3396 long options), encoded and decoded in pure TypeScript.
 *
 * A message keeps its options as raw bytes by code; typed readers turn the ones a lease needs
 * into values ({@linkcode leaseOptions}).
 *
 * @module
 */

/** Option codes podplex reads or writes. */
export const OPT = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOST_NAME: 12,
  DOMAIN_NAME: 15,
  STATIC_ROUTES: 33,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAM_REQUEST_LIST: 55,
  MESSAGE: 56,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  VENDOR_CLASS: 60,
  CLIENT_ID: 61,
  USER_CLASS: 77,
  DOMAIN_SEARCH: 119,
  CLASSLESS_ROUTES: 121,
  END: 255,
} as const;

/** DHCP message types (option 53). */
export const MSG = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;

/** BOOTREQUEST / BOOTREPLY (the `op` field). */
export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;

/** The flags bit asking the server to broadcast its reply (RFC 2131 4.1). */
export const FLAG_BROADCAST = 0x8000;

const MAGIC = [99, 130, 83, 99];
const HEADER_LEN = 236;
/** BOOTP's minimum message size: some servers and relays drop shorter ones (RFC 1542). */
const MIN_LEN = 300;

/** One DHCP message. Addresses are dotted IPv4 text. */
export interface DhcpMessage {
  op: number;
  /** The transaction id. */
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** The client hardware address (6 bytes for Ethernet). */
  chaddr: Uint8Array;
  /** Options by code, each the concatenation of all its instances (RFC 3396). */
  options: Map<number, Uint8Array>;
}

/** A malformed message (the client drops it and keeps waiting). */
export class DhcpFormatError extends Error {
  /** @param msg what is wrong */
  constructor(msg: string) {
    super(msg);
    this.name = "DhcpFormatError";
  }
}

/** Four bytes of a dotted IPv4 address. */
export function ipBytes(ip: string): Uint8Array {
  const parts = ip.split(".").map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN));
  if (parts.length !== 4 || parts.some((p) => !(p >= 0 && p <= 255))) {
    throw new TypeError(`Invalid IPv4 address "${ip}"`);
  }
  return Uint8Array.from(parts);
}

/** Dotted text of 4 bytes at `off`. */
export function ipText(b: Uint8Array, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** `aa:bb:cc:dd:ee:ff` as bytes. */
export function macBytes(mac: string): Uint8Array {
  const parts = mac.split(":");
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) {
    throw new TypeError(`Invalid MAC address "${mac}"`);
  }
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

/**
 * Encodes a message: header, magic cookie, options (split into 255-byte instances), END,
 * padded to 300 bytes.
 */
export function encodeMessage(m: DhcpMessage): Uint8Array {
  const opts: number[] = [];
  for (const [code, value] of m.options) {
    if (code === OPT.PAD || code === OPT.END) continue;
    // RFC 3396: a value longer than 255 bytes goes in consecutive instances.
    for (let off = 0; off < value.length || off === 0; off += 255) {
      const part = value.subarray(off, off + 255);
      opts.push(code, part.length, ...part);
      if (value.length === 0) break;
    }
  }
  opts.push(OPT.END);
  const len = Math.max(MIN_LEN, HEADER_LEN + 4 + opts.length);
  const out = new Uint8Array(len);
  const v = new DataView(out.buffer);
  out[0] = m.op;
  out[1] = 1; // htype Ethernet
  out[2] = Math.min(m.chaddr.length, 16);
  out[3] = 0;
  v.setUint32(4, m.xid >>> 0);
  v.setUint16(8, m.secs);
  v.setUint16(10, m.flags);
  out.set(ipBytes(m.ciaddr), 12);
  out.set(ipBytes(m.yiaddr), 16);
  out.set(ipBytes(m.siaddr), 20);
  out.set(ipBytes(m.giaddr), 24);
  out.set(m.chaddr.subarray(0, 16), 28);
  out.set(MAGIC, HEADER_LEN);
  out.set(opts, HEADER_LEN + 4);
  return out;
}

/** Reads one option area into `into` (appending repeated codes). */
function readOptions(area: Uint8Array, into: Map<number, Uint8Array>, where: string): void {
  for (let i = 0; i < area.length;) {
    const code = area[i++];
    if (code === OPT.PAD) continue;
    if (code === OPT.END) return;
    if (i >= area.length) throw new DhcpFormatError(`Option ${code} in ${where} has no length`);
    const n = area[i++];
    if (i + n > area.length) {
      throw new DhcpFormatError(`Option ${code} in ${where} runs past the end (${n} bytes)`);
    }
    const value = area.subarray(i, i + n);
    i += n;
    const prev = into.get(code);
    if (!prev) into.set(code, value.slice());
    else {
      const joined = new Uint8Array(prev.length + value.length);
      joined.set(prev);
      joined.set(value, prev.length);
      into.set(code, joined);
    }
  }
}

/**
 * Decodes a message, including options overloaded into `file` and `sname` (option 52).
 *
 * @throws {DhcpFormatError} when it is too short, lacks the magic cookie, or an option is
 *   truncated
 */
export function decodeMessage(b: Uint8Array): DhcpMessage {
  if (b.length < HEADER_LEN + 4) {
    throw new DhcpFormatError(`Message of ${b.length} bytes is shorter than a DHCP header`);
  }
  if (MAGIC.some((x, i) => b[HEADER_LEN + i] !== x)) {
    throw new DhcpFormatError("Message lacks the DHCP magic cookie");
  }
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const hlen = Math.min(b[2], 16);
  const options = new Map<number, Uint8Array>();
  readOptions(b.subarray(HEADER_LEN + 4), options, "the options");
  const overload = options.get(OPT.OVERLOAD)?.[0] ?? 0;
  if (overload & 1) readOptions(b.subarray(108, 236), options, "the file field");
  if (overload & 2) readOptions(b.subarray(44, 108), options, "the sname field");
  return {
    op: b[0],
    xid: v.getUint32(4),
    secs: v.getUint16(8),
    flags: v.getUint16(10),
    ciaddr: ipText(b, 12),
    yiaddr: ipText(b, 16),
    siaddr: ipText(b, 20),
    giaddr: ipText(b, 24),
    chaddr: b.slice(28, 28 + hlen),
    options,
  };
}

/** The message type (option 53), or 0 when absent. */
export function messageType(m: DhcpMessage): number {
  return m.options.get(OPT.MESSAGE_TYPE)?.[0] ?? 0;
}

/** A route a lease carries: `dst` as CIDR, `gw` dotted ("0.0.0.0" for on-link). */
export interface LeaseRoute {
  dst: string;
  gw: string;
}

/** The typed options of an OFFER or ACK. Times are seconds. */
export interface LeaseOptions {
  serverId?: string;
  /** The prefix length from the subnet mask (option 1). */
  prefix?: number;
  routers: string[];
  dns: string[];
  domain?: string;
  search: string[];
  hostName?: string;
  leaseTime?: number;
  renewalTime?: number;
  rebindingTime?: number;
  /** Option 121, when present (RFC 3442: then 3 and 33 are ignored for routing). */
  classlessRoutes?: LeaseRoute[];
  /** Option 33 (classful destinations). */
  staticRoutes: LeaseRoute[];
  /** Option 56, the server's text (on a NAK). */
  message?: string;
}

const dec = new TextDecoder();

function ipList(v: Uint8Array | undefined): string[] {
  const out: string[] = [];
  for (let i = 0; v && i + 4 <= v.length; i += 4) out.push(ipText(v, i));
  return out;
}

function u32(v: Uint8Array | undefined): number | undefined {
  if (!v || v.length < 4) return undefined;
  return new DataView(v.buffer, v.byteOffset, 4).getUint32(0);
}

/**
 * Option 121 (RFC 3442): width, the significant octets of the destination, the router.
 *
 * @throws {DhcpFormatError} when truncated or a width exceeds 32
 */
export function decodeClasslessRoutes(v: Uint8Array): LeaseRoute[] {
  const out: LeaseRoute[] = [];
  for (let i = 0; i < v.length;) {
    const width = v[i++];
    if (width > 32) throw new DhcpFormatError(`Classless route width ${width} exceeds 32`);
    const octets = Math.ceil(width / 8);
    if (i + octets + 4 > v.length) throw new DhcpFormatError("Classless route is truncated");
    const dst = new Uint8Array(4);
    dst.set(v.subarray(i, i + octets));
    i += octets;
    out.push({ dst: `${ipText(dst)}/${width}`, gw: ipText(v, i) });
    i += 4;
  }
  return out;
}

/** Option 121's encoding of `routes` (for servers in tests and for symmetry). */
export function encodeClasslessRoutes(routes: LeaseRoute[]): Uint8Array {
  const out: number[] = [];
  for (const r of routes) {
    const [ip, w] = r.dst.split("/");
    const width = Number(w);
    out.push(width, ...ipBytes(ip).subarray(0, Math.ceil(width / 8)), ...ipBytes(r.gw));
  }
  return Uint8Array.from(out);
}

/**
 * An option-33 destination with its classful prefix, the address kept as given (as the
 * reference's `classfulSubnet` does); undefined for class D/E, which have no class mask.
 */
function classfulDst(b: Uint8Array, off: number): string | undefined {
  const first = b[off];
  if (first >= 224) return undefined;
  const prefix = first < 128 ? 8 : first < 192 ? 16 : 24;
  return `${ipText(b, off)}/${prefix}`;
}

/**
 * Option 119 (RFC 3397): DNS names in wire format, with compression pointers relative to
 * the start of the (concatenated) option.
 *
 * @throws {DhcpFormatError} when a label or pointer runs out of the option or loops
 */
export function decodeDomainSearch(v: Uint8Array): string[] {
  const names: string[] = [];
  for (let i = 0; i < v.length;) {
    const [name, next] = readName(v, i);
    names.push(name);
    i = next;
  }
  return names;
}

function readName(v: Uint8Array, start: number): [string, number] {
  const labels: string[] = [];
  let i = start;
  let end = -1;
  for (let hops = 0; hops <= v.length; hops++) {
    if (i >= v.length) throw new DhcpFormatError("Domain search name runs past the option");
    const len = v[i];
    if (len === 0) return [labels.join("."), end < 0 ? i + 1 : end];
    if ((len & 0xc0) === 0xc0) {
      if (i + 1 >= v.length) throw new DhcpFormatError("Domain search pointer is truncated");
      if (end < 0) end = i + 2;
      i = ((len & 0x3f) << 8) | v[i + 1];
      continue;
    }
    if (i + 1 + len > v.length) throw new DhcpFormatError("Domain search label is truncated");
    labels.push(dec.decode(v.subarray(i + 1, i + 1 + len)));
    i += 1 + len;
  }
  throw new DhcpFormatError("Domain search name has a pointer loop");
}

/** Option 119's encoding (no compression). */
export function encodeDomainSearch(names: string[]): Uint8Array {
  const enc = new TextEncoder();
  const out: number[] = [];
  for (const n of names) {
    for (const label of n.split(".").filter(Boolean)) {
      const b = enc.encode(label);
      out.push(b.length, ...b);
    }
    out.push(0);
  }
  return Uint8Array.from(out);
}

/** Text of an option, trailing NULs dropped (some servers NUL-terminate). */
function text(v: Uint8Array | undefined): string | undefined {
  if (!v) return undefined;
  return dec.decode(v).replace(/\0+$/, "");
}

/**
 * The options of an OFFER/ACK/NAK that a lease and a CNI result need.
 *
 * @throws {DhcpFormatError} when option 1, 119 or 121 is malformed
 */
export function leaseOptions(m: DhcpMessage): LeaseOptions {
  const o = m.options;
  const mask = o.get(OPT.SUBNET_MASK);
  const out: LeaseOptions = {
    routers: ipList(o.get(OPT.ROUTER)),
    dns: ipList(o.get(OPT.DNS)),
    search: o.has(OPT.DOMAIN_SEARCH) ? decodeDomainSearch(o.get(OPT.DOMAIN_SEARCH)!) : [],
    staticRoutes: [],
  };
  const sid = o.get(OPT.SERVER_ID);
  if (sid && sid.length >= 4) out.serverId = ipText(sid);
  if (mask && mask.length >= 4) out.prefix = prefixOfMask(mask);
  const set = <K extends keyof LeaseOptions>(k: K, val: LeaseOptions[K] | undefined) => {
    if (val !== undefined) out[k] = val;
  };
  set("domain", text(o.get(OPT.DOMAIN_NAME)));
  set("hostName", text(o.get(OPT.HOST_NAME)));
  set("message", text(o.get(OPT.MESSAGE)));
  set("leaseTime", u32(o.get(OPT.LEASE_TIME)));
  set("renewalTime", u32(o.get(OPT.RENEWAL_TIME)));
  set("rebindingTime", u32(o.get(OPT.REBINDING_TIME)));
  const cls = o.get(OPT.CLASSLESS_ROUTES);
  if (cls) out.classlessRoutes = decodeClasslessRoutes(cls);
  const st = o.get(OPT.STATIC_ROUTES);
  for (let i = 0; st && i + 8 <= st.length; i += 8) {
    const dst = classfulDst(st, i);
    if (dst) out.staticRoutes.push({ dst, gw: ipText(st, i + 4) });
  }
  return out;
}

/**
 * The prefix length of a netmask.
 *
 * @throws {DhcpFormatError} when the mask is not contiguous ones then zeros
 */
export function prefixOfMask(mask: Uint8Array): number {
  const n = new DataView(mask.buffer, mask.byteOffset, 4).getUint32(0);
  let prefix = 0;
  while (prefix < 32 && (n & (0x80000000 >>> prefix)) !== 0) prefix++;
  const rebuilt = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  if (rebuilt !== n) throw new DhcpFormatError(`Subnet mask ${ipText(mask)} is not contiguous`);
  return prefix;
}
