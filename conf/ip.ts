/**
 * Dependency-free IPv4/IPv6 math: parse, format (as Go's `net.IP.String` prints, which is
 * RFC 5952 for IPv6), CIDR parsing, next/prev, containment and range ends.
 *
 * Addresses are plain `{ family, value }` objects with the address as a bigint, so they
 * compare with `===` on `value` and do arithmetic without byte loops. IPv4-mapped IPv6
 * text (`::ffff:10.0.0.1`) parses as IPv4, as Go's `To4()` treats it.
 *
 * No npm package on purpose: every module on the CNI hot path costs startup time.
 *
 * @module
 */
import { CniError, Code } from "./errors.ts";

/** An address family: 4 or 6. */
export type Family = 4 | 6;

/** An IP address: its family and its value as an unsigned integer of 32 or 128 bits. */
export interface IP {
  /** 4 or 6. */
  readonly family: Family;
  /** The address as an unsigned integer (32 bits for IPv4, 128 for IPv6). */
  readonly value: bigint;
}

/** A parsed CIDR: the address as written, the prefix length and the masked network. */
export interface Cidr {
  /** The address as written (`10.1.0.5` for `10.1.0.5/24`). */
  readonly ip: IP;
  readonly prefix: number;
  readonly family: Family;
  /** The network address (`10.1.0.0` for `10.1.0.5/24`). */
  readonly network: IP;
}

/** The number of bits of an address of `family`. */
export function bits(family: Family): number {
  return family === 4 ? 32 : 128;
}

function maxValue(family: Family): bigint {
  return (1n << BigInt(bits(family))) - 1n;
}

function describe(field: string | undefined, text: string): string {
  return field ? `Invalid "${field}": "${text}"` : `Invalid IP address "${text}"`;
}

/**
 * Parses an IPv4 or IPv6 address (no zone, no prefix).
 *
 * @param text the address, e.g. `10.1.0.5` or `fd00::1`
 * @param field a config field name for the error message
 * @throws {CniError} code 7 naming the value (and the field, when given)
 */
export function parseIp(text: string, field?: string): IP {
  const ip = tryParseIp(text);
  if (!ip) throw new CniError(Code.InvalidConfig, `${describe(field, text)} is not an IP address`);
  return ip;
}

/** Parses an address like {@linkcode parseIp}, returning undefined instead of throwing. */
export function tryParseIp(text: string): IP | undefined {
  if (typeof text !== "string") return undefined;
  if (text.includes(":")) {
    const v = parseV6(text);
    if (v === undefined) return undefined;
    // Go's To4(): an IPv4-mapped address is an IPv4 address.
    if (v >> 32n === 0xffffn) return { family: 4, value: v & 0xffffffffn };
    return { family: 6, value: v };
  }
  const v = parseV4(text);
  return v === undefined ? undefined : { family: 4, value: v };
}

/** Whether `text` is a valid IPv4 or IPv6 address. */
export function isIpText(text: string): boolean {
  return tryParseIp(text) !== undefined;
}

function parseV4(text: string): bigint | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    // Go 1.17+ rejects leading zeros (they were octal to some parsers).
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseGroups(side: string): bigint[] | undefined {
  if (side === "") return [];
  const out: bigint[] = [];
  const parts = side.split(":");
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (i === parts.length - 1 && p.includes(".")) {
      const v4 = parseV4(p);
      if (v4 === undefined) return undefined;
      out.push(v4 >> 16n, v4 & 0xffffn);
    } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) {
      out.push(BigInt(parseInt(p, 16)));
    } else {
      return undefined;
    }
  }
  return out;
}

function parseV6(text: string): bigint | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = parseGroups(halves[0]);
  const tail = halves.length === 2 ? parseGroups(halves[1]) : [];
  if (!head || !tail) return undefined;
  // A dotted quad may only end the address.
  if (halves.length === 2 && halves[0].includes(".")) return undefined;
  const count = head.length + tail.length;
  // "::" must stand for at least one group (as in Go's parser).
  if (halves.length === 2 ? count > 7 : count !== 8) return undefined;
  const groups = [...head, ...new Array(8 - count).fill(0n), ...tail];
  return groups.reduce((acc, g) => (acc << 16n) | g, 0n);
}

/**
 * Formats an address as Go's `net.IP.String()` does: dotted decimal for IPv4, RFC 5952 for
 * IPv6 (lowercase, no leading zeros, the first longest run of two or more zero groups as `::`).
 */
export function formatIp(ip: IP): string {
  return ip.family === 4 ? formatV4(ip.value) : formatV6(ip.value);
}

function formatV4(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join(".");
}

function formatV6(v: bigint): string {
  const g: number[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) g.push(Number((v >> s) & 0xffffn));
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(":");
  if (bestLen < 2) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/**
 * Parses `address/prefix` as Go's `net.ParseCIDR` does.
 *
 * @param text e.g. `10.1.0.5/24` or `fd00::/64`
 * @param field a config field name for the error message
 * @returns the address as written, the prefix, the family and the network address
 * @throws {CniError} code 7 naming the value (and the field, when given)
 */
export function parseCidr(text: string, field?: string): Cidr {
  const c = tryParseCidr(text);
  if (!c) {
    throw new CniError(Code.InvalidConfig, `${describe(field, String(text))} is not a CIDR`);
  }
  return c;
}

/** Parses a CIDR like {@linkcode parseCidr}, returning undefined instead of throwing. */
export function tryParseCidr(text: string): Cidr | undefined {
  if (typeof text !== "string") return undefined;
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const addr = text.slice(0, slash);
  const len = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(len)) return undefined;
  let prefix = Number(len);
  let ip: IP;
  if (addr.includes(":")) {
    const v = parseV6(addr);
    if (v === undefined || prefix > 128) return undefined;
    // Go prints a v4-mapped network with a /96+ mask as the IPv4 network.
    if (v >> 32n === 0xffffn && prefix >= 96) {
      ip = { family: 4, value: v & 0xffffffffn };
      prefix -= 96;
    } else {
      ip = { family: 6, value: v };
    }
  } else {
    const v = parseV4(addr);
    if (v === undefined || prefix > 32) return undefined;
    ip = { family: 4, value: v };
  }
  return { ip, prefix, family: ip.family, network: networkOf(ip, prefix) };
}

/** The mask of a prefix length as an integer (`/24` → `0xffffff00`). */
export function maskOf(family: Family, prefix: number): bigint {
  const host = BigInt(bits(family) - prefix);
  return maxValue(family) ^ ((1n << host) - 1n);
}

/** The network address of `ip/prefix`. */
export function networkOf(ip: IP, prefix: number): IP {
  return { family: ip.family, value: ip.value & maskOf(ip.family, prefix) };
}

/** The last address of a CIDR (the broadcast address for IPv4). */
export function lastAddress(c: Cidr): IP {
  const host = (1n << BigInt(bits(c.family) - c.prefix)) - 1n;
  return { family: c.family, value: c.network.value | host };
}

/** The IPv4 broadcast address of a CIDR (same as {@linkcode lastAddress}). */
export const broadcast: (c: Cidr) => IP = lastAddress;

/** Whether `ip` lies inside the CIDR (same family, same network bits). */
export function contains(c: Cidr, ip: IP): boolean {
  return ip.family === c.family && (ip.value & maskOf(c.family, c.prefix)) === c.network.value;
}

/** Whether two CIDRs share any address. */
export function overlaps(a: Cidr, b: Cidr): boolean {
  return contains(a, b.network) || contains(b, a.network);
}

/** The address `n` after `ip`, wrapping around the address space (as Go's ip.NextIP does). */
export function addIp(ip: IP, n: bigint | number): IP {
  const size = maxValue(ip.family) + 1n;
  const v = (((ip.value + BigInt(n)) % size) + size) % size;
  return { family: ip.family, value: v };
}

/** The next address (wraps to zero after the last one). */
export function nextIp(ip: IP): IP {
  return addIp(ip, 1);
}

/** The previous address (wraps to the last one before zero). */
export function prevIp(ip: IP): IP {
  return addIp(ip, -1);
}

/** Whether two addresses are equal (family and value). */
export function ipEquals(a: IP | undefined, b: IP | undefined): boolean {
  return !!a && !!b && a.family === b.family && a.value === b.value;
}

/** Orders addresses: IPv4 before IPv6, then by value; returns -1, 0 or 1. */
export function compareIp(a: IP, b: IP): number {
  if (a.family !== b.family) return a.family < b.family ? -1 : 1;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

/** Whether an address (or its text) is IPv4. */
export function isIPv4(ip: IP | string): boolean {
  if (typeof ip === "string") return tryParseIp(ip)?.family === 4;
  return ip.family === 4;
}

/** The canonical `ip/prefix` text (`10.1.0.5/24`, `fd00::5/64`). */
export function formatCidr(ip: IP, prefix: number): string {
  return `${formatIp(ip)}/${prefix}`;
}

/** The canonical text of a CIDR's network (`10.1.0.0/24` for `10.1.0.5/24`). */
export function networkString(c: Cidr): string {
  return formatCidr(c.network, c.prefix);
}

/**
 * Canonicalises `ip/prefix` text without masking (`fd00:0::05/64` → `fd00::5/64`).
 *
 * @throws {CniError} code 7 naming the value (and the field, when given)
 */
export function canonicalCidr(text: string, field?: string): string {
  const c = parseCidr(text, field);
  return formatCidr(c.ip, c.prefix);
}

/** The address as network-order bytes (4 for IPv4, 16 for IPv6), e.g. for netlink. */
export function ipToBytes(ip: IP): Uint8Array {
  const n = ip.family === 4 ? 4 : 16;
  const out = new Uint8Array(n);
  let v = ip.value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/**
 * An address from network-order bytes; 16 bytes holding an IPv4-mapped address give IPv4.
 *
 * @throws {CniError} code 7 when the length is not 4 or 16
 */
export function ipFromBytes(bytes: Uint8Array): IP {
  if (bytes.length !== 4 && bytes.length !== 16) {
    throw new CniError(Code.InvalidConfig, `Invalid IP address length ${bytes.length}`);
  }
  const v = bytes.reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
  if (bytes.length === 4) return { family: 4, value: v };
  if (v >> 32n === 0xffffn) return { family: 4, value: v & 0xffffffffn };
  return { family: 6, value: v };
}
