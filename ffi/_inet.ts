/**
 * Text to netlink bytes and back for IP addresses, CIDRs and MAC addresses. The IP parsing
 * itself is conf/ip.ts (dependency-free, already on the hot path).
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { formatIp, ipToBytes, parseCidr, parseIp } from "../conf/ip.ts";

/** AF_INET / AF_INET6 for a family. */
export const afOf = (family: 4 | 6): number => (family === 4 ? 2 : 10);

/** The family (4 or 6) of AF_INET / AF_INET6, else undefined. */
export const familyOfAf = (af: number): 4 | 6 | undefined =>
  af === 2 ? 4 : af === 10 ? 6 : undefined;

/** An address as family + network-order bytes. */
export interface IpBytes {
  family: 4 | 6;
  bytes: Uint8Array;
}

/**
 * Parses an IP address to bytes.
 *
 * @throws {CniError} code 7 when the text is not an address
 */
export function ipBytes(text: string): IpBytes {
  const ip = parseIp(text);
  return { family: ip.family, bytes: ipToBytes(ip) };
}

/** A CIDR as the address bytes, the network bytes and the prefix length. */
export interface CidrBytes extends IpBytes {
  prefixLen: number;
  network: Uint8Array;
  /** The IPv4 broadcast address (last address of the network). */
  last: Uint8Array;
}

/**
 * Parses `addr/prefix` to bytes; a bare address is taken as a host route (/32 or /128).
 *
 * @throws {CniError} code 7 when the text is not a CIDR
 */
export function cidrBytes(text: string): CidrBytes {
  const c = text.includes("/") ? parseCidr(text) : undefined;
  const ip = c ? c.ip : parseIp(text);
  const prefixLen = c ? c.prefix : ip.family === 4 ? 32 : 128;
  const bytes = ipToBytes(ip);
  const network = maskBytes(bytes, prefixLen, false);
  const last = maskBytes(bytes, prefixLen, true);
  return { family: ip.family, bytes, prefixLen, network, last };
}

/** The address with host bits cleared (or set, for the last address). */
function maskBytes(bytes: Uint8Array, prefixLen: number, set: boolean): Uint8Array {
  const out = bytes.slice();
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, prefixLen - i * 8));
    const hostMask = 0xff >> keep;
    out[i] = set ? out[i] | hostMask : out[i] & ~hostMask & 0xff;
  }
  return out;
}

/** The text of an address from its bytes (4 or 16 of them). */
export function formatIpBytes(b: Uint8Array): string {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return formatIp({ family: b.length === 4 ? 4 : 6, value: v });
}

/**
 * Parses `aa:bb:cc:dd:ee:ff` (or with `-`) to 6 bytes.
 *
 * @throws {CniError} code 7 when the text is not a MAC address
 */
export function macBytes(text: string): Uint8Array {
  const parts = text.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) {
    throw new CniError(Code.InvalidConfig, `Invalid MAC address "${text}"`);
  }
  return Uint8Array.from(parts, (p) => parseInt(p, 16));
}

/** Lower-case colon-separated hex of a hardware address. */
export function formatMac(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(":");
}
