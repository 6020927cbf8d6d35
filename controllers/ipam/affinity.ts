/**
 * A node's block affinity under an etcd lease, kept alive by the node's daemon.
 *
 * {@linkcode startNodeAffinity} grants a lease (TTL default 30 s), puts `<prefix>/node/<node>`
 * under it, writes its id to `<dataDir>/<node>/lease` (CNI calls on the node attach the
 * block claims they make to it), re-attaches the node's existing claims to it, and keeps it
 * alive. When the daemon dies the lease expires and etcd deletes the node's claims: other
 * nodes may then claim those blocks (their addresses stay reserved until released; every
 * reservation is its own create-if-absent transaction, so sharing a block is safe). A lost
 * lease (etcd said it is gone) is granted again.
 *
 * The ipam controller (./ipam.ts) starts it; a CNI ADD only reads the lease file
 * (delegates/ipam/cluster).
 *
 * @module
 */
import type { EtcdKv, EtcdLeases, KeepAlive } from "../../clients/etcd/client.ts";
import { nodeKey, SpaceKeys } from "../../delegates/ipam/cluster/keys.ts";
import { readSpaces } from "../../delegates/ipam/cluster/reconcile.ts";
import { writeFileAtomic } from "../../conf/io.ts";

/** Options of {@linkcode startNodeAffinity}. */
export interface NodeAffinityOptions {
  /** The etcd client (its key-value and lease parts). */
  etcd: EtcdKv & EtcdLeases;
  /** The etcd prefix (default `/podplex/ipam/v1`). */
  prefix?: string;
  /** This node's name. */
  node: string;
  /** The node-local dir of the cluster IPAM (where CNI calls look for the lease id). */
  dataDir: string;
  /** The lease's TTL in seconds (default 30). */
  ttlSec?: number;
  /** The time written into the node key (default `Date.now`). */
  now?: () => number;
  /**
   * Told when a lost lease could not be granted again; {@linkcode NodeAffinity.ensure}
   * (the ipam controller's every pass) tries again.
   */
  onError?(err: Error): void;
}

/** A running affinity keeper. */
export interface NodeAffinity {
  /** The current lease id. */
  readonly lease: string;
  /** How many times the lease was granted (1 + the regrants after a loss). */
  readonly grants: number;
  /** Grants the lease again when the last grant after a loss failed; else does nothing. */
  ensure(): Promise<void>;
  /** Stops refreshing (the lease expires after its TTL; a restart re-attaches the claims). */
  stop(): Promise<void>;
}

function leaseFile(dataDir: string, node: string): string {
  return `${dataDir.replace(/\/+$/, "")}/${encodeURIComponent(node)}/lease`;
}

/** Grants the node's lease and keeps it alive; see the module doc. */
export async function startNodeAffinity(o: NodeAffinityOptions): Promise<NodeAffinity> {
  const prefix = o.prefix ?? "/podplex/ipam/v1";
  const ttl = o.ttlSec ?? 30;
  const now = o.now ?? Date.now;
  let ka: KeepAlive | undefined;
  let lease = "";
  let grants = 0;
  let stopped = false;
  let broken = false;
  const attach = async () => {
    lease = (await o.etcd.leaseGrant(ttl)).id;
    grants++;
    await o.etcd.put(nodeKey(prefix, o.node), JSON.stringify({ t: now() }), lease);
    await reattachClaims(o.etcd, prefix, o.node, lease);
    await writeFileAtomic(leaseFile(o.dataDir, o.node), lease, { dirMode: 0o700 });
    ka = o.etcd.keepAlive(lease, ttl, () => {
      if (!stopped) reattach();
    });
  };
  // Without a retry, one failed grant after a loss (etcd down at that moment) would leave the
  // node without affinity until the daemon restarted.
  const reattach = () =>
    attach().then(() => void (broken = false), (e) => {
      broken = true;
      o.onError?.(e as Error);
    });
  await attach();
  return {
    get lease() {
      return lease;
    },
    get grants() {
      return grants;
    },
    async ensure() {
      if (broken && !stopped) await reattach();
    },
    stop() {
      stopped = true;
      ka?.stop();
      return Promise.resolve();
    },
  };
}

/** Puts every claim of `node` (and its index entry) under `lease`, if still the node's. */
async function reattachClaims(etcd: EtcdKv, prefix: string, node: string, lease: string) {
  for (const view of await readSpaces(etcd, prefix)) {
    const keys = new SpaceKeys(prefix, view.space);
    for (const c of view.blocks) {
      if (c.node !== node || c.lease === lease) continue;
      const key = keys.block(c.block);
      const value = JSON.stringify(
        c.emptySince === undefined ? { node } : { node, emptySince: c.emptySince },
      );
      await etcd.txn({
        compare: [{ key, target: "MOD", result: "EQUAL", modRevision: c.modRevision }],
        success: [
          { put: { key, value, lease } },
          { put: { key: keys.affinity(node, c.block), value: "", lease } },
        ],
      });
    }
  }
}
