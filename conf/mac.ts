/**
 * Hardware addresses as Go's `net.ParseMAC` reads them (what Multus validates `mac` and
 * `infiniband-guid` with, and what the reference plugins set MACs from): 6, 8 or 20 octets,
 * written `00:00:5e:00:53:01`, `00-00-5e-00-53-01` or `0000.5e00.5301` (one separator
 * throughout). podplex normalises every accepted form once, to lower-case colon form.
 *
 * @module
 */

/** A parsed hardware address. */
export interface HardwareAddr {
  /** Lower-case, colon separated (`00:00:5e:00:53:01`). */
  text: string;
  /** 6 (Ethernet, EUI-48), 8 (EUI-64) or 20 (IP over InfiniBand). */
  octets: number;
}

const OCTET_COUNTS = new Set([6, 8, 20]);
const HEX2 = /^[0-9a-fA-F]{2}$/;

/** Octets from `xx<sep>xx<sep>...` (colon or hyphen form). */
function octetForm(s: string, sep: string): string[] | undefined {
  const parts = s.split(sep);
  return parts.every((p) => HEX2.test(p)) ? parts : undefined;
}

/** Octets from `xxxx.xxxx.xxxx` (the dotted form Cisco prints). */
function dotForm(s: string): string[] | undefined {
  const groups = s.split(".");
  if (!groups.every((g) => /^[0-9a-fA-F]{4}$/.test(g))) return undefined;
  return groups.flatMap((g) => [g.slice(0, 2), g.slice(2)]);
}

/**
 * Parses a hardware address as Go's `net.ParseMAC` does.
 *
 * @returns the normalised address, or undefined when `s` is not one
 *
 * @example
 * ```ts
 * parseMac("0000.5E00.5301")?.text; // "00:00:5e:00:53:01"
 * ```
 */
export function parseMac(s: unknown): HardwareAddr | undefined {
  if (typeof s !== "string" || s.length < 14) return undefined;
  let octets: string[] | undefined;
  if (s[2] === ":" || s[2] === "-") octets = octetForm(s, s[2]);
  else if (s[4] === ".") octets = dotForm(s);
  if (!octets || !OCTET_COUNTS.has(octets.length)) return undefined;
  return { text: octets.join(":").toLowerCase(), octets: octets.length };
}
