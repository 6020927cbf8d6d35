/**
 * Address text helpers the link delegates share: the family of an address, the canonical
 * network of a CIDR, and comparisons that tolerate the kernel's and IPAM's different spellings
 * (`fd00::0:1` vs `fd00::1`).
 *
 * @module
 */
import { formatIp, networkOf, parseCidr, parseIp } from "../../conf/ip.ts";

/** The address family of an address or CIDR text. */
export function familyOf(text: string): 4 | 6 {
  return text.includes(":") ? 6 : 4;
}

/** The canonical network text of a CIDR (`10.1.0.0/16` for `10.1.2.3/16`). */
export function canonicalNet(cidr: string): string {
  const c = parseCidr(cidr);
  return `${formatIp(networkOf(c.ip, c.prefix))}/${c.prefix}`;
}

/** Whether CIDR `a` names the canonical network `b` (false when `a` does not parse). */
export function sameNet(a: string, b: string): boolean {
  try {
    return canonicalNet(a) === b;
  } catch {
    return false;
  }
}

/** Whether two address texts are the same address. */
export function sameIp(a: string, b: string): boolean {
  const x = parseIp(a);
  const y = parseIp(b);
  return x.family === y.family && x.value === y.value;
}
