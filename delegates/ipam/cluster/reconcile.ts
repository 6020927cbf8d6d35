/**
 * The cluster IPAM's reconciler (`podplex ipam reconcile`, and the daemon periodically):
 *
 * - replays the node's DEL journal;
 * - releases address records whose attachment no longer exists, as the caller's `alive`
 *   predicate says (podplex's state dir of the node, or the API server's pods); a record the
 *   predicate cannot judge is kept, and records younger than `minAgeMs` are kept (an ADD in
 *   flight has reserved its address before the runtime knows the pod);
 * - releases empty blocks after a grace period: a block seen empty is marked
 *   (`emptySince`), released when still empty `graceMs` later (the release is one
 *   transaction that holds only if the block is unchanged and no record is in its range), and
 *   unmarked when it holds addresses again. Blocks of nodes that are gone go by themselves
 *   when their claims live under the node's lease (see `affinity.ts`).
 *
 * It reads the whole `<prefix>/s/` tree in one range: fine for the pools of a cluster (a
 * record is ~150 bytes), and it runs rarely.
 *
 * @module
 */
import { parseIp } from "../../../conf/ip.ts";
import type { EtcdKv } from "../../../clients/etcd/client.ts";
import { type AddressRecord, blockOfKey, SpaceKeys } from "./keys.ts";
import { type BlockClaim, ClusterStore, parseRecord } from "./store.ts";

/** Options of {@linkcode reconcile}. */
export interface ReconcileOptions {
  etcd: EtcdKv;
  /** The etcd prefix (default `/podplex/ipam/v1`). */
  prefix?: string;
  /** This node: its records (node scope) and its blocks are the ones looked at. */
  node: string;
  /** `node`: only this node's records and blocks; `all`: every node's (API server mode). */
  scope?: "node" | "all";
  /**
   * Whether a record's attachment still exists (undefined: cannot tell, keep it).
   */
  alive(rec: AddressRecord): boolean | undefined | Promise<boolean | undefined>;
  /** Keep records younger than this (default 300 000 ms). */
  minAgeMs?: number;
  /** Release a block empty for this long (default 60 000 ms). */
  graceMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

/** What a reconcile did. */
export interface ReconcileReport {
  released: AddressRecord[];
  /** Blocks released (`space cidr`). */
  blocksReleased: string[];
  /** Blocks marked empty (grace period started). */
  blocksMarked: string[];
}

/** Parsed content of `<prefix>/s/`, by space. */
export interface SpaceView {
  space: string;
  records: AddressRecord[];
  blocks: BlockClaim[];
}

/** Reads every address space (records and block claims) in one range. */
export async function readSpaces(etcd: EtcdKv, prefix: string): Promise<SpaceView[]> {
  const r = await etcd.range(`${prefix}/s/`, { prefix: true });
  const spaces = new Map<string, SpaceView>();
  for (const kv of r.kvs) {
    const rest = kv.key.slice(prefix.length + 3);
    const slash = rest.indexOf("/");
    const space = rest.slice(0, slash);
    const kind = rest.slice(slash + 1, rest.indexOf("/", slash + 1));
    let v = spaces.get(space);
    if (!v) spaces.set(space, v = { space, records: [], blocks: [] });
    if (kind === "ip") {
      const rec = parseRecord(kv.value);
      if (rec) v.records.push(rec);
    } else if (kind === "blk") {
      const block = blockOfKey(kv.key);
      let val: { node?: string; emptySince?: number } = {};
      try {
        val = JSON.parse(kv.value);
      } catch { /* not ours */ }
      if (block) {
        v.blocks.push({
          block,
          node: String(val.node ?? ""),
          modRevision: kv.modRevision,
          lease: kv.lease,
          ...(typeof val.emptySince === "number" ? { emptySince: val.emptySince } : {}),
        });
      }
    }
  }
  return [...spaces.values()];
}

/** Runs one reconcile pass; see the module doc. */
export async function reconcile(o: ReconcileOptions): Promise<ReconcileReport> {
  const prefix = o.prefix ?? "/podplex/ipam/v1";
  const now = o.now ?? Date.now;
  const minAge = o.minAgeMs ?? 300_000;
  const grace = o.graceMs ?? 60_000;
  const all = o.scope === "all";
  const report: ReconcileReport = { released: [], blocksReleased: [], blocksMarked: [] };
  for (const view of await readSpaces(o.etcd, prefix)) {
    const owner = { containerId: "", ifname: "", pod: "", node: o.node };
    const store = new ClusterStore(o.etcd, new SpaceKeys(prefix, view.space), owner, "");
    const kept: AddressRecord[] = [];
    for (const rec of view.records) {
      const mine = all || rec.node === o.node;
      if (!mine || now() - rec.t < minAge || (await o.alive(rec)) !== false) {
        kept.push(rec);
        continue;
      }
      await store.release(parseIp(rec.ip, "record"));
      report.released.push(rec);
    }
    for (const c of view.blocks) {
      if (!all && c.node !== o.node) continue;
      await reconcileBlock(store, c, kept, now(), grace, `${view.space} ${cidrText(c)}`, report);
    }
  }
  return report;
}

function cidrText(c: BlockClaim): string {
  const ip = c.block.network;
  const hex = ip.value.toString(16);
  return `${hex}/${c.block.prefix}`;
}

async function reconcileBlock(
  store: ClusterStore,
  c: BlockClaim,
  kept: AddressRecord[],
  now: number,
  grace: number,
  name: string,
  report: ReconcileReport,
): Promise<void> {
  const size = BigInt(c.block.family === 4 ? 32 : 128) - BigInt(c.block.prefix);
  const lo = c.block.network.value;
  const hi = lo + (1n << size) - 1n;
  const used = kept.some((r) => {
    const ip = parseIp(r.ip, "record");
    return ip.family === c.block.family && ip.value >= lo && ip.value <= hi;
  });
  if (used) {
    // Holds addresses again: its grace period starts over when it next empties.
    if (c.emptySince !== undefined) await store.markEmpty(c, undefined);
    return;
  }
  if (c.emptySince === undefined) {
    await store.markEmpty(c, now);
    report.blocksMarked.push(name);
  } else if (now - c.emptySince >= grace && await store.releaseBlock(c)) {
    report.blocksReleased.push(name);
  }
}
