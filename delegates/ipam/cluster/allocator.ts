/**
 * Picks addresses: lowest free first, as Whereabouts does (`IterateForAssignment`: from the
 * window's first address up, skipping reserved addresses and excluded networks), but
 * within the node's own blocks first (block affinity, as Calico's IPAM):
 *
 * 1. the node's blocks, in address order: the lowest free address of the first block that
 *    has one;
 * 2. else claim the lowest unclaimed block of the window that has a free address
 *    (compare-and-swap on the claim's absence) and take its lowest free address;
 * 3. else (every block claimed) borrow: the lowest free address of the whole window.
 *
 * Each pick is one transaction that creates the address's record only if absent, so two
 * nodes (or a node whose block was reclaimed) never get one address twice; a lost race
 * moves on to the next candidate. With `block_size: 0` only step 3 runs: Whereabouts'
 * cluster-wide lowest-free, one transaction per address.
 *
 * On one node, with fresh pools, this gives exactly Whereabouts' addresses.
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
  lastAddress,
  maskOf,
  nextIp,
} from "../../../conf/ip.ts";
import { blockPrefix, type ClusterConf, type PoolRange } from "./conf.ts";
import { blockKey } from "./keys.ts";
import type { ClusterStore } from "./store.ts";

/** Gives up after this many lost races in one window (another node keeps winning). */
const MAX_RACES = 64;

/** The aligned block of `prefix` holding `ip`. */
export function blockOf(ip: IP, prefix: number): Cidr {
  const network = { family: ip.family, value: ip.value & maskOf(ip.family, prefix) };
  return { ip: network, network, prefix, family: ip.family };
}

function maxIp(a: IP, b: IP): IP {
  return compareIp(a, b) >= 0 ? a : b;
}

function minIp(a: IP, b: IP): IP {
  return compareIp(a, b) <= 0 ? a : b;
}

/** The part of the range's window inside `block` (undefined when none). */
export function windowIn(r: PoolRange, block: Cidr): [IP, IP] | undefined {
  if (block.family !== r.subnet.family) return undefined;
  const lo = maxIp(r.first, block.network);
  const hi = minIp(r.last, lastAddress(block));
  return compareIp(lo, hi) <= 0 ? [lo, hi] : undefined;
}

/** The excluded network holding `ip`, if any. */
function excludedBy(r: PoolRange, ip: IP): Cidr | undefined {
  return r.exclude.find((c) => c.family === ip.family && contains(c, ip));
}

/**
 * Free candidates of lo..hi in order, skipping `used` and excluded networks (jumping past
 * each, as Whereabouts does).
 */
export function* candidates(r: PoolRange, lo: IP, hi: IP, used: Set<bigint>): Generator<IP> {
  let ip = lo;
  while (compareIp(ip, hi) <= 0) {
    const ex = excludedBy(r, ip);
    if (ex) {
      const end = lastAddress(ex);
      if (compareIp(end, hi) >= 0) return;
      ip = nextIp(end);
      continue;
    }
    if (!used.has(ip.value)) yield ip;
    ip = nextIp(ip);
  }
}

/** The lowest free address of lo..hi reserved for the attachment, or undefined. */
async function takeIn(
  store: ClusterStore,
  r: PoolRange,
  lo: IP,
  hi: IP,
  who: { containerId: string; ifname: string },
  known?: Set<bigint>,
): Promise<IP | undefined> {
  const used = known ?? await store.used(lo, hi);
  let races = 0;
  for (const ip of candidates(r, lo, hi, used)) {
    if (await store.reserve(who.containerId, who.ifname, ip)) return ip;
    if (++races >= MAX_RACES) {
      throw new CniError(
        Code.TryAgainLater,
        `Cannot reserve an address in ${formatIp(lo)}-${formatIp(hi)}: ${races} races lost`,
      );
    }
  }
  return undefined;
}

/** Aligned blocks of `prefix` covering the window, in address order. */
export function* windowBlocks(r: PoolRange, prefix: number): Generator<Cidr> {
  let b = blockOf(r.first, prefix);
  while (compareIp(b.network, r.last) <= 0) {
    yield b;
    const end = lastAddress(b);
    if (compareIp(end, r.last) >= 0) return;
    b = blockOf(nextIp(end), prefix);
  }
}

/**
 * Allocates one address of `r` for the attachment (see the module doc).
 *
 * @param mine the node's blocks, as read under the node-local lock
 * @param usedIn the addresses in use in each of `mine`, when read with them (by block key)
 * @param onClaim told of each block this call claimed
 * @throws {CniError} code 103 when the window has no free address
 */
export async function allocate(
  conf: ClusterConf,
  store: ClusterStore,
  r: PoolRange,
  mine: Cidr[],
  who: { containerId: string; ifname: string },
  usedIn?: Map<string, Set<bigint>>,
  onClaim?: (b: Cidr) => void,
): Promise<IP> {
  const prefix = blockPrefix(conf, r);
  if (prefix > 0) {
    const own = mine.filter((b) => b.family === r.subnet.family)
      .sort((a, b) => compareIp(a.network, b.network));
    // One read for all own blocks not read yet (not one per block).
    const missing = own.filter((b) => !usedIn?.has(blockKey(b)));
    const used = new Map([
      ...(usedIn ?? []),
      ...(missing.length ? await store.usedIn(missing) : []),
    ]);
    for (const b of own) {
      const w = windowIn(r, b);
      const ip = w && await takeIn(store, r, w[0], w[1], who, used.get(blockKey(b)));
      if (ip) return ip;
    }
    const ip = await claimAndTake(conf, store, r, prefix, own, who, onClaim);
    if (ip) return ip;
  }
  const ip = await takeIn(store, r, r.first, r.last, who);
  if (ip) return ip;
  throw new CniError(
    Code.AddressExhausted,
    `No free address in range "${r.text}" (${formatIp(r.first)}-${formatIp(r.last)})`,
  );
}

/** Step 2: claim the lowest unclaimed block with a free address and take from it. */
async function claimAndTake(
  conf: ClusterConf,
  store: ClusterStore,
  r: PoolRange,
  prefix: number,
  own: Cidr[],
  who: { containerId: string; ifname: string },
  onClaim?: (b: Cidr) => void,
): Promise<IP | undefined> {
  const claimed = new Set(
    (await store.blocks()).map((c) => `${c.block.network.value}/${c.block.prefix}`),
  );
  for (const b of own) claimed.add(`${b.network.value}/${b.prefix}`);
  for (const b of windowBlocks(r, prefix)) {
    if (claimed.has(`${b.network.value}/${b.prefix}`)) continue;
    const w = windowIn(r, b);
    if (!w) continue;
    if (!await store.claimBlock(b, conf.nodeName)) continue;
    onClaim?.(b);
    const ip = await takeIn(store, r, w[0], w[1], who);
    if (ip) return ip;
  }
  return undefined;
}
