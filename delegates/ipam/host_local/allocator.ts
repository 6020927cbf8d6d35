/**
 * The host-local allocator: picks the next free address of a range set, in the reference
 * plugin's order (plugins/ipam/host-local/backend/allocator/allocator.go):
 * start after `last_reserved_ip.<set>` when that address is still in the set, else at the
 * first range's start; walk round robin over the set's ranges; skip the gateway; give up
 * when back at the first address tried.
 *
 * @module
 */
import { CniError, Code } from "../../../conf/errors.ts";
import { formatCidr, formatIp, type IP, ipEquals, nextIp } from "../../../conf/ip.ts";
import type { CniIpConfig } from "../../../conf/types.ts";
import { type Range, rangeFor, type RangeSet, rangeSetString } from "./range.ts";
import type { Store } from "./store.ts";

/** One candidate address and the range it came from. */
export interface Candidate {
  ip: IP;
  range: Range;
}

/**
 * Iterates a range set from a starting point, as the reference's RangeIter does.
 *
 * @param set the range set
 * @param lastReserved the address to start after (it must lie in `set`), or undefined to
 *   start at the first range's rangeStart
 */
export function* iterateRangeSet(set: RangeSet, lastReserved?: IP): Generator<Candidate> {
  let idx = 0;
  let cur: IP | undefined;
  let start: IP | undefined;
  if (lastReserved) {
    const i = set.findIndex((r) => rangeFor([r], lastReserved));
    if (i >= 0) [idx, cur] = [i, lastReserved];
  }
  if (!cur) {
    // Fresh start: rangeStart itself is the first candidate (inclusive).
    cur = set[0].rangeStart;
    start = cur;
    if (!ipEquals(cur, set[0].gateway)) yield { ip: cur, range: set[0] };
  }
  for (;;) {
    let r = set[idx];
    if (ipEquals(cur, r.rangeEnd)) {
      idx = (idx + 1) % set.length;
      r = set[idx];
      cur = r.rangeStart;
    } else {
      cur = nextIp(cur);
    }
    if (!start) start = cur;
    else if (ipEquals(cur, start)) return;
    if (!ipEquals(cur, r.gateway)) yield { ip: cur, range: r };
  }
}

/** Allocates and releases addresses of one range set (index `setIndex`) in a store. */
export class IpAllocator {
  readonly #set: RangeSet;
  readonly #store: Store;
  readonly #rangeId: string;

  /**
   * @param set the range set
   * @param store where leases live
   * @param setIndex the set's index in the config (names `last_reserved_ip.<index>`)
   */
  constructor(set: RangeSet, store: Store, setIndex: number) {
    this.#set = set;
    this.#store = store;
    this.#rangeId = String(setIndex);
  }

  /**
   * Reserves an address for `containerId`/`ifname`: `requested` when given, else the next
   * free one.
   *
   * @returns the address as `ip/prefix` of its subnet, with the range's gateway
   * @throws {CniError} 7 for a requested address outside the set or equal to the gateway,
   *   105 when the requested address is taken or the container already holds one of this
   *   set, 103 when the set is exhausted
   */
  async get(containerId: string, ifname: string, requested?: IP): Promise<CniIpConfig> {
    await this.#store.lock();
    try {
      const got = requested
        ? await this.#reserveRequested(containerId, ifname, requested)
        : await this.#reserveNext(containerId, ifname);
      return {
        address: formatCidr(got.ip, got.range.subnet.prefix),
        gateway: formatIp(got.range.gateway),
      };
    } finally {
      await this.#store.unlock();
    }
  }

  async #reserveRequested(id: string, ifname: string, ip: IP): Promise<Candidate> {
    const range = rangeFor(this.#set, ip);
    if (!range) {
      throw new CniError(
        Code.InvalidConfig,
        `Requested IP ${formatIp(ip)} is not in range set ${rangeSetString(this.#set)}`,
      );
    }
    if (ipEquals(ip, range.gateway)) {
      throw new CniError(Code.InvalidConfig, `Requested IP ${formatIp(ip)} is the gateway`);
    }
    if (!await this.#store.reserve(id, ifname, ip, this.#rangeId)) {
      throw new CniError(
        Code.AlreadyExists,
        `Requested IP ${formatIp(ip)} is not available in range set ${rangeSetString(this.#set)}`,
      );
    }
    return { ip, range };
  }

  async #reserveNext(id: string, ifname: string): Promise<Candidate> {
    // The spec forbids two allocations for one attachment (a repeated ADD).
    for (const held of await this.#store.getByID(id, ifname)) {
      if (rangeFor(this.#set, held)) {
        throw new CniError(
          Code.AlreadyExists,
          `${formatIp(held)} has been allocated to "${id}", duplicate allocation is not allowed`,
        );
      }
    }
    const last = await this.#lastReserved();
    for (const c of iterateRangeSet(this.#set, last)) {
      if (await this.#store.reserve(id, ifname, c.ip, this.#rangeId)) return c;
    }
    throw new CniError(
      Code.AddressExhausted,
      `No IP addresses available in range set ${rangeSetString(this.#set)}`,
    );
  }

  async #lastReserved(): Promise<IP | undefined> {
    try {
      const ip = await this.#store.lastReservedIP(this.#rangeId);
      // A stale file (ranges renumbered) only costs round robin this once.
      return ip && rangeFor(this.#set, ip) ? ip : undefined;
    } catch {
      return undefined;
    }
  }

  /** Releases every address of `containerId`/`ifname` (legacy leases when there are none). */
  async release(containerId: string, ifname: string): Promise<IP[]> {
    await this.#store.lock();
    try {
      return await this.#store.releaseByID(containerId, ifname);
    } finally {
      await this.#store.unlock();
    }
  }
}
