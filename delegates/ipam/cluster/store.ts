/**
 * The cluster IPAM's store: one address space in etcd, behind host-local's
 * {@linkcode Store} seam (reserve / release by attachment / list / release one, under a lock
 * that is node-local here), plus what block affinity adds (claim, list and release blocks).
 *
 * Every write is one transaction that is safe to repeat (the client retries requests that
 * may have run): an address is reserved only if its record is absent, and a failed compare
 * that finds our own record counts as success.
 *
 * @module
 */
import type { Cidr, IP } from "../../../conf/ip.ts";
import { formatIp, parseIp } from "../../../conf/ip.ts";
import { EtcdError, type EtcdKv, type KeyValue, type Op } from "../../../clients/etcd/client.ts";
import { type Lease, Mutex, type Store } from "../host_local/store.ts";
import {
  type AddressRecord,
  blockEnd,
  blockKey,
  blockOfKey,
  type Owner,
  type SpaceKeys,
  unhex,
} from "./keys.ts";

/** A block claim as read from etcd. */
export interface BlockClaim {
  block: Cidr;
  node: string;
  modRevision: number;
  /** When the block was last seen empty (ms), for the release grace period. */
  emptySince?: number;
  /** The lease the claim lives under ("0": none). */
  lease?: string;
}

const mutexes = new Map<string, Mutex>();

/** An address space's store for one node and one attachment. */
export class ClusterStore implements Store {
  readonly keys: SpaceKeys;
  readonly #etcd: EtcdKv;
  readonly #owner: Owner;
  /** The node-local lock file of the space (its hint file sits beside it). */
  readonly lockPath: string;
  readonly #range: string;
  readonly #lease: string | undefined;
  #lockFile: Deno.FsFile | undefined;

  /**
   * @param etcd the client (owned by the caller)
   * @param keys the space's keys
   * @param owner who reserves (this attachment on this node)
   * @param lockPath the node-local lock file of the space
   * @param range the pool range, recorded with each address
   * @param lease the node's affinity lease, attached to block claims (none: claims stay)
   */
  constructor(
    etcd: EtcdKv,
    keys: SpaceKeys,
    owner: Owner,
    lockPath: string,
    range = "",
    lease?: string,
  ) {
    this.#etcd = etcd;
    this.keys = keys;
    this.#owner = owner;
    this.lockPath = lockPath;
    this.#range = range;
    this.#lease = lease;
  }

  /** Takes the node-local lock of the space (in-process mutex, then flock). */
  async lock(): Promise<void> {
    let m = mutexes.get(this.lockPath);
    if (!m) mutexes.set(this.lockPath, m = new Mutex());
    await m.acquire();
    try {
      const dir = this.lockPath.slice(0, this.lockPath.lastIndexOf("/"));
      await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
      this.#lockFile = await Deno.open(this.lockPath, { read: true, write: true, create: true });
      await this.#lockFile.lock(true);
    } catch (err) {
      this.#lockFile?.close();
      this.#lockFile = undefined;
      m.release();
      throw err;
    }
  }

  /** Releases the lock. */
  unlock(): Promise<void> {
    // Closing the descriptor drops the flock.
    this.#lockFile?.close();
    this.#lockFile = undefined;
    mutexes.get(this.lockPath)?.release();
    return Promise.resolve();
  }

  /** Drops the lock if held (the etcd client belongs to the caller). */
  async close(): Promise<void> {
    if (this.#lockFile) await this.unlock();
  }

  /** The record this store writes for `ip`. */
  record(ip: IP): AddressRecord {
    return { ...this.#owner, ip: formatIp(ip), range: this.#range, t: Date.now() };
  }

  /**
   * Reserves `ip` for the owner if nobody holds it.
   *
   * @returns false when another attachment holds it
   */
  async reserve(containerId: string, ifname: string, ip: IP, _rangeId = ""): Promise<boolean> {
    const rec = { ...this.record(ip), containerId, ifname };
    const value = JSON.stringify(rec);
    const key = this.keys.ip(ip);
    const r = await this.#etcd.txn({
      compare: [{ key, target: "CREATE", result: "EQUAL", createRevision: 0 }],
      success: [
        { put: { key, value } },
        { put: { key: this.keys.own(containerId, ifname, ip), value } },
      ],
      failure: [{ range: { key } }],
    });
    if (r.succeeded) return true;
    // A retried request that had committed finds our own record.
    const held = r.responses[0] && "range" in r.responses[0]
      ? r.responses[0].range.kvs[0]
      : undefined;
    const other = held ? parseRecord(held.value) : undefined;
    return other?.containerId === containerId && other.ifname === ifname &&
      other.node === this.#owner.node;
  }

  /** host-local's "last reserved" has no meaning here: allocation is lowest-free. */
  lastReservedIP(_rangeId: string): Promise<IP | undefined> {
    return Promise.resolve(undefined);
  }

  /** Releases every address of `containerId`/`ifname` in the space. @returns them */
  async releaseByID(containerId: string, ifname: string): Promise<IP[]> {
    const own = await this.#etcd.range(this.keys.ownPrefix(containerId, ifname), { prefix: true });
    const out: IP[] = [];
    for (const kv of own.kvs) {
      const ip = unhex(kv.key.slice(kv.key.lastIndexOf("/") + 1));
      await this.#releaseIf(ip, kv);
      out.push(ip);
    }
    return out;
  }

  /** Deletes the record of `ip` only if it is still the one the index entry `own` holds. */
  async #releaseIf(ip: IP, own: KeyValue): Promise<void> {
    const key = this.keys.ip(ip);
    await this.#etcd.txn({
      compare: [{ key, target: "VALUE", result: "EQUAL", value: own.value }],
      success: [{ delete: { key } }, { delete: { key: own.key } }],
      // The address went to someone else (released by GC, then reserved): drop our index only.
      failure: [{ delete: { key: own.key } }],
    });
  }

  /** Addresses held by `containerId`/`ifname` in the space. */
  async getByID(containerId: string, ifname: string): Promise<IP[]> {
    const own = await this.#etcd.range(this.keys.ownPrefix(containerId, ifname), { prefix: true });
    return own.kvs.map((kv) => parseIp(parseRecord(kv.value)?.ip ?? "", "record"));
  }

  /** Every address record of the space, as leases. */
  async list(): Promise<Lease[]> {
    return (await this.records()).map((r) => ({
      ip: parseIp(r.ip, "record"),
      containerId: r.containerId,
      ifname: r.ifname,
    }));
  }

  /** Every address record of the space, with its key data. */
  async records(): Promise<AddressRecord[]> {
    const r = await this.#etcd.range(this.keys.ipPrefix(), { prefix: true });
    return r.kvs.map((kv) => parseRecord(kv.value)).filter((x): x is AddressRecord => !!x);
  }

  /** Releases one address (GC, reconcile) and its index entry; absent is fine. */
  async release(ip: IP): Promise<void> {
    const kv = await this.#etcd.get(this.keys.ip(ip));
    const rec = kv ? parseRecord(kv.value) : undefined;
    if (!kv || !rec) return;
    await this.#etcd.txn({
      compare: [{ key: kv.key, target: "MOD", result: "EQUAL", modRevision: kv.modRevision }],
      success: [
        { delete: { key: kv.key } },
        { delete: { key: this.keys.own(rec.containerId, rec.ifname, ip) } },
      ],
    });
  }

  /**
   * One read of what an ADD needs: the node's blocks, the attachment's records, and the
   * addresses in use in `blocks` (the node's blocks as last seen, a hint).
   */
  async snapshot(node: string, containerId: string, ifname: string, blocks: Cidr[] = []) {
    const r = await this.#etcd.txn({
      compare: [],
      success: [
        { range: { key: this.keys.affinityPrefix(node), prefix: true, keysOnly: true } },
        { range: { key: this.keys.ownPrefix(containerId, ifname), prefix: true } },
        ...blocks.map((b) => this.#usedOp(b)),
      ],
    });
    const kvs = (i: number) => {
      const x = r.responses[i];
      return x && "range" in x ? x.range.kvs : [];
    };
    const mine = kvs(0).map((kv) => blockOfKey(kv.key)).filter((b): b is Cidr => !!b);
    const held = kvs(1).map((kv) => parseRecord(kv.value)).filter((x): x is AddressRecord => !!x);
    const used = new Map(blocks.map((b, i) => [blockKey(b), this.#values(kvs(2 + i))]));
    return { blocks: mine, held, used };
  }

  #usedOp(b: Cidr): Op {
    const [key, end] = this.keys.ipSpan(b.network, blockEnd(b));
    return { range: { key, end, keysOnly: true } };
  }

  #values(kvs: KeyValue[]): Set<bigint> {
    return new Set(kvs.map((kv) => unhex(kv.key.slice(kv.key.lastIndexOf("/") + 1)).value));
  }

  /** The addresses in use in each block, in one read (by {@linkcode blockKey}). */
  async usedIn(blocks: Cidr[]): Promise<Map<string, Set<bigint>>> {
    const r = await this.#etcd.txn({ compare: [], success: blocks.map((b) => this.#usedOp(b)) });
    return new Map(blocks.map((b, i) => {
      const x = r.responses[i];
      return [blockKey(b), this.#values(x && "range" in x ? x.range.kvs : [])];
    }));
  }

  /** The addresses (values) reserved in lo..hi. */
  async used(lo: IP, hi: IP): Promise<Set<bigint>> {
    const [start, end] = this.keys.ipSpan(lo, hi);
    const r = await this.#etcd.range(start, { end, keysOnly: true });
    return new Set(r.kvs.map((kv) => unhex(kv.key.slice(kv.key.lastIndexOf("/") + 1)).value));
  }

  /** Every block claim of the space. */
  async blocks(): Promise<BlockClaim[]> {
    const r = await this.#etcd.range(this.keys.blockPrefix(), { prefix: true });
    const out: BlockClaim[] = [];
    for (const kv of r.kvs) {
      const block = blockOfKey(kv.key);
      if (!block) continue;
      const v = parseJson(kv.value);
      out.push({
        block,
        node: String(v?.node ?? ""),
        modRevision: kv.modRevision,
        lease: kv.lease,
        ...(typeof v?.emptySince === "number" ? { emptySince: v.emptySince } : {}),
      });
    }
    return out;
  }

  /**
   * Claims `block` for `node` if nobody has (compare-and-swap on the claim's absence).
   *
   * @returns whether the node holds it now
   */
  async claimBlock(block: Cidr, node: string): Promise<boolean> {
    try {
      return await this.#claim(block, node, this.#lease);
    } catch (err) {
      // The daemon's lease expired (its file is stale): claim without a lease.
      if (!this.#lease || !leaseGone(err)) throw err;
      return await this.#claim(block, node, undefined);
    }
  }

  async #claim(block: Cidr, node: string, lease: string | undefined): Promise<boolean> {
    const key = this.keys.block(block);
    const value = JSON.stringify({ node, t: Date.now() });
    const r = await this.#etcd.txn({
      compare: [{ key, target: "CREATE", result: "EQUAL", createRevision: 0 }],
      success: [
        { put: { key, value, lease } },
        { put: { key: this.keys.affinity(node, block), value: "", lease } },
      ],
      failure: [{ range: { key } }],
    });
    if (r.succeeded) return true;
    const held = r.responses[0] && "range" in r.responses[0]
      ? r.responses[0].range.kvs[0]
      : undefined;
    return parseJson(held?.value ?? "")?.node === node;
  }

  /**
   * Releases a block claim only if it is unchanged since read and holds no address.
   *
   * @returns whether it was released
   */
  async releaseBlock(c: BlockClaim): Promise<boolean> {
    const [start, end] = this.keys.ipSpan(c.block.network, blockEnd(c.block));
    const r = await this.#etcd.txn({
      compare: [
        {
          key: this.keys.block(c.block),
          target: "MOD",
          result: "EQUAL",
          modRevision: c.modRevision,
        },
        { key: start, rangeEnd: end, target: "CREATE", result: "EQUAL", createRevision: 0 },
      ],
      success: [
        { delete: { key: this.keys.block(c.block) } },
        { delete: { key: this.keys.affinity(c.node, c.block) } },
      ],
    });
    return r.succeeded;
  }

  /**
   * Marks a block as seen empty at `since` (start of its grace period), or clears the mark
   * (`since` undefined), if the claim is unchanged; the claim keeps its lease.
   */
  async markEmpty(c: BlockClaim, since: number | undefined): Promise<void> {
    const key = this.keys.block(c.block);
    const value = JSON.stringify(
      since === undefined ? { node: c.node } : { node: c.node, emptySince: since },
    );
    await this.#etcd.txn({
      compare: [{ key, target: "MOD", result: "EQUAL", modRevision: c.modRevision }],
      success: [{ put: { key, value, lease: c.lease } }],
    });
  }

  /** Runs writes as one transaction (e.g. the pool description). */
  async write(ops: Op[]): Promise<void> {
    await this.#etcd.txn({ compare: [], success: ops });
  }
}

/** Whether etcd refused a request because its lease does not exist (any more). */
function leaseGone(err: unknown): boolean {
  return err instanceof EtcdError && /lease not found/i.test(err.message);
}

/** A record's JSON (undefined when it is not one). */
export function parseRecord(text: string): AddressRecord | undefined {
  const v = parseJson(text);
  if (!v || typeof v.ip !== "string" || typeof v.containerId !== "string") return undefined;
  return {
    containerId: v.containerId,
    ifname: String(v.ifname ?? ""),
    pod: String(v.pod ?? ""),
    node: String(v.node ?? ""),
    ip: v.ip,
    range: String(v.range ?? ""),
    t: Number(v.t ?? 0),
  };
}

// deno-lint-ignore no-explicit-any
function parseJson(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
