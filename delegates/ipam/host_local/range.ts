/**
 * host-local ranges and range sets: parsing, defaulting and validation exactly as the
 * reference plugin's `Range.Canonicalize` / `RangeSet.Canonicalize` (containernetworking/
 * plugins, plugins/ipam/host-local/backend/allocator/range.go, range_set.go).
 *
 * @module
 */
import { CniError, Code } from "../../../conf/errors.ts";
import {
  type Cidr,
  compareIp,
  contains,
  formatIp,
  type IP,
  ipEquals,
  lastAddress,
  networkString,
  nextIp,
  parseCidr,
  parseIp,
  prevIp,
} from "../../../conf/ip.ts";
import { isObject, type Json, optString } from "../_conf.ts";

/** One range: a subnet, the first and last allocatable address, and the gateway. */
export interface Range {
  /** The subnet; its address is the network address (host bits are an error). */
  subnet: Cidr;
  /** First address to hand out, inclusive (default: network + 1). */
  rangeStart: IP;
  /** Last address to hand out, inclusive (default: last address, minus broadcast for v4). */
  rangeEnd: IP;
  /** The gateway (default: network + 1); never handed out. */
  gateway: IP;
}

/** A range set: one address is allocated per set, round robin over its ranges. */
export type RangeSet = Range[];

function bad(path: string, msg: string): CniError {
  return new CniError(Code.InvalidConfig, `Invalid "${path}": ${msg}`);
}

/**
 * Parses and defaults one range object (`subnet`, `rangeStart`, `rangeEnd`, `gateway`).
 *
 * @param raw the JSON object
 * @param path its place in the config for error messages, e.g. `ipam.ranges[0][1]`
 * @throws {CniError} code 7 naming the field and the value
 */
export function parseRange(raw: unknown, path: string): Range {
  if (!isObject(raw)) throw bad(path, `${JSON.stringify(raw)} is not an object`);
  const subnetText = optString(raw, "subnet", `${path}.subnet`);
  if (!subnetText) throw new CniError(Code.InvalidConfig, `Missing "${path}.subnet"`);
  const subnet = parseCidr(subnetText, `${path}.subnet`);
  checkSubnet(subnet, subnetText, `${path}.subnet`);
  const gateway = optionalIp(raw, "gateway", path) ?? nextIp(subnet.network);
  const start = optionalIp(raw, "rangeStart", path);
  const end = optionalIp(raw, "rangeEnd", path);
  const r: Range = {
    subnet,
    gateway,
    // Defaults to network + 1 even though that is the usual gateway: the iterator skips it.
    rangeStart: start ?? nextIp(subnet.network),
    rangeEnd: end ?? defaultEnd(subnet),
  };
  if (start && !contains(subnet, start)) {
    throw bad(`${path}.rangeStart`, `${formatIp(start)} is not in network ${subnetText}`);
  }
  if (end && !contains(subnet, end)) {
    throw bad(`${path}.rangeEnd`, `${formatIp(end)} is not in network ${subnetText}`);
  }
  // The reference rejects this too (its containment check includes the other end).
  if (compareIp(r.rangeStart, r.rangeEnd) > 0) {
    throw bad(
      path,
      `rangeStart ${formatIp(r.rangeStart)} is after rangeEnd ${formatIp(r.rangeEnd)}`,
    );
  }
  return r;
}

function checkSubnet(subnet: Cidr, text: string, path: string): void {
  const size = subnet.family === 4 ? 32 : 128;
  // The reference cannot allocate from a /31, /32, /127 or /128.
  if (subnet.prefix > size - 2) {
    throw bad(path, `network ${text} is too small to allocate from`);
  }
  if (!ipEquals(subnet.ip, subnet.network)) {
    throw bad(
      path,
      `${text} has host bits set; for a prefix of ${subnet.prefix} the network address is ` +
        formatIp(subnet.network),
    );
  }
}

function optionalIp(raw: Json, key: string, path: string): IP | undefined {
  const text = optString(raw, key, `${path}.${key}`);
  // Go's net.IP decodes "" as nil: an empty string means "not set".
  return text ? parseIp(text, `${path}.${key}`) : undefined;
}

function defaultEnd(subnet: Cidr): IP {
  const last = lastAddress(subnet);
  return subnet.family === 4 ? prevIp(last) : last;
}

/**
 * Parses one range set (a non-empty list of ranges of one family that do not overlap).
 *
 * @throws {CniError} code 7
 */
export function parseRangeSet(raw: unknown, path: string): RangeSet {
  if (!Array.isArray(raw)) throw bad(path, `${JSON.stringify(raw)} is not a list of ranges`);
  if (raw.length === 0) throw bad(path, "the range set is empty");
  const set = raw.map((r, i) => parseRange(r, `${path}[${i}]`));
  for (let i = 1; i < set.length; i++) {
    if (set[i].subnet.family !== set[0].subnet.family) {
      throw bad(`${path}[${i}]`, "mixed address families in one range set");
    }
  }
  for (let i = 0; i < set.length; i++) {
    for (let j = i + 1; j < set.length; j++) {
      if (rangesOverlap(set[i], set[j])) {
        throw bad(path, `ranges ${rangeString(set[i])} and ${rangeString(set[j])} overlap`);
      }
    }
  }
  return set;
}

/**
 * Checks a list of range sets: at least one, and no two sets overlapping.
 *
 * @throws {CniError} code 7
 */
export function checkRangeSets(sets: RangeSet[], path: string): void {
  if (sets.length === 0) throw new CniError(Code.InvalidConfig, `No IP ranges specified`);
  for (let i = 0; i < sets.length; i++) {
    for (let j = i + 1; j < sets.length; j++) {
      if (rangeSetsOverlap(sets[i], sets[j])) {
        throw bad(path, `range set ${i} overlaps with range set ${j}`);
      }
    }
  }
}

/** Whether `ip` lies in the subnet and between rangeStart and rangeEnd (inclusive). */
export function rangeContains(r: Range, ip: IP): boolean {
  return contains(r.subnet, ip) && compareIp(ip, r.rangeStart) >= 0 &&
    compareIp(ip, r.rangeEnd) <= 0;
}

/** The range of the set that holds `ip`, if any. */
export function rangeFor(set: RangeSet, ip: IP): Range | undefined {
  return set.find((r) => rangeContains(r, ip));
}

/** Whether two ranges share an address (as the reference checks: by their ends). */
export function rangesOverlap(a: Range, b: Range): boolean {
  if (a.subnet.family !== b.subnet.family) return false;
  return rangeContains(a, b.rangeStart) || rangeContains(a, b.rangeEnd) ||
    rangeContains(b, a.rangeStart) || rangeContains(b, a.rangeEnd);
}

/** Whether any range of one set overlaps any range of the other. */
export function rangeSetsOverlap(a: RangeSet, b: RangeSet): boolean {
  return a.some((r) => b.some((r1) => rangesOverlap(r, r1)));
}

/** `start-end`, as the reference prints a range. */
export function rangeString(r: Range): string {
  return `${formatIp(r.rangeStart)}-${formatIp(r.rangeEnd)}`;
}

/** The set's ranges joined by commas, as the reference prints a range set. */
export function rangeSetString(set: RangeSet): string {
  return set.map(rangeString).join(",");
}

/** The subnet as canonical `network/prefix` text. */
export function subnetString(r: Range): string {
  return networkString(r.subnet);
}
