/**
 * A node's block affinity under an etcd lease, kept alive by the node's daemon, and the
 * daemon's periodic reconcile.
 *
 * {@linkcode startNodeAffinity} grants a lease (TTL default 30 s), puts `<prefix>/node/<node>`
 * under it, writes its id to `<dataDir>/<node>/lease` (CNI calls on the node attach the
 * block claims they make to it), re-attaches the node's existing claims to it, and keeps it
 * alive. When the daemon dies the lease expires and etcd deletes the node's claims: other
 * nodes may then claim those blocks (their addresses stay reserved until released; every
 * reservation is its own create-if-absent transaction, so sharing a block is safe). A lost
 * lease (etcd said it is gone) is granted again.
 *
 * Wiring in `podplex serve` is one call: `const ipam = await startClusterIpamDaemon(...)`
 * at start and `await ipam.stop()` at shutdown.
 *
 * @module
 */
import type { EtcdClient, KeepAlive } from "../../../clients/etcd/client.ts";
import { nodeKey } from "./keys.ts";
import { journalDir, replayJournalDir } from "./journal.ts";
import { readSpaces, reconcile, type ReconcileOptions, type ReconcileReport } from "./reconcile.ts";
import { SpaceKeys } from "./keys.ts";
import { writeFileAtomic } from "../../../conf/io.ts";

/** Options of {@linkcode startNodeAffinity}. */
export interface NodeAffinityOptions {
  etcd: EtcdClient;
  prefix?: string;
  node: string;
  /** The node-local dir of the cluster IPAM (where CNI calls look for the lease id). */
  dataDir: string;
  ttlSec?: number;
}

/** A running affinity keeper. */
export interface NodeAffinity {
  /** The current lease id. */
  readonly lease: string;
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
  let ka: KeepAlive | undefined;
  let lease = "";
  let stopped = false;
  const attach = async () => {
    lease = (await o.etcd.leaseGrant(ttl)).id;
    await o.etcd.put(nodeKey(prefix, o.node), JSON.stringify({ t: Date.now() }), lease);
    await reattachClaims(o.etcd, prefix, o.node, lease);
    await writeFileAtomic(leaseFile(o.dataDir, o.node), lease, { dirMode: 0o700 });
    ka = o.etcd.keepAlive(lease, ttl, () => {
      if (!stopped) attach().catch(() => {});
    });
  };
  await attach();
  return {
    get lease() {
      return lease;
    },
    stop() {
      stopped = true;
      ka?.stop();
      return Promise.resolve();
    },
  };
}

/** Puts every claim of `node` (and its index entry) under `lease`, if still the node's. */
async function reattachClaims(etcd: EtcdClient, prefix: string, node: string, lease: string) {
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

/** Options of {@linkcode startClusterIpamDaemon}. */
export interface ClusterIpamDaemonOptions extends Omit<ReconcileOptions, "etcd"> {
  etcd: EtcdClient;
  dataDir: string;
  /** Reconcile every this many ms (default 60 000). */
  intervalMs?: number;
  ttlSec?: number;
  /** Each pass's report or error (logging). */
  onPass?(report: ReconcileReport | Error): void;
}

/** The daemon side: affinity lease + journal replay + reconcile every `intervalMs`. */
export async function startClusterIpamDaemon(
  o: ClusterIpamDaemonOptions,
): Promise<{ stop(): Promise<void> }> {
  const affinity = await startNodeAffinity(o);
  const prefix = o.prefix ?? "/podplex/ipam/v1";
  let running: Promise<void> = Promise.resolve();
  const pass = async () => {
    try {
      await replayJournalDir(o.etcd, journalDir(o.dataDir, o.node), prefix, o.node);
      o.onPass?.(await reconcile(o));
    } catch (err) {
      o.onPass?.(err as Error);
    }
  };
  const timer = setInterval(() => {
    running = running.then(pass);
  }, o.intervalMs ?? 60_000);
  return {
    async stop() {
      clearInterval(timer);
      await running;
      await affinity.stop();
    },
  };
}
