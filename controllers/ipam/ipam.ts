/**
 * The cluster IPAM's controller (`podplex serve --ipam-network FILE`): the node's block
 * affinity lease (./affinity.ts; granted again on a pass when a regrant failed), and on its
 * timer the journal replay (releases a DEL could
 * not make while etcd was down) and a reconcile (records whose attachment is gone, blocks
 * empty past their grace). What a CNI ADD or DEL runs stays in delegates/ipam/cluster; the
 * reconcile step itself is the same function `podplex ipam reconcile` runs once.
 *
 * @module
 */
import type { EtcdKv, EtcdLeases } from "../../clients/etcd/client.ts";
import type { AddressRecord } from "../../delegates/ipam/cluster/keys.ts";
import { journalDir, replayJournalDir } from "../../delegates/ipam/cluster/journal.ts";
import { reconcile, type ReconcileReport } from "../../delegates/ipam/cluster/reconcile.ts";
import type { Controller, ControllerContext, StartController } from "../controller.ts";
import { type NodeAffinity, startNodeAffinity } from "./affinity.ts";

/** What the ipam controller is started with. */
export interface IpamContext extends ControllerContext {
  /** The etcd client (its key-value and lease parts); the caller closes it. */
  etcd: EtcdKv & EtcdLeases;
  /** The etcd prefix (default `/podplex/ipam/v1`). */
  prefix?: string;
  /** This node's name. */
  node: string;
  /** The node-local dir of the cluster IPAM (lease file, journal). */
  dataDir: string;
  /**
   * Read once per pass: whether a record's attachment still exists (the node's podplex
   * state dir as it is now; undefined: cannot tell, keep it).
   */
  attachments(): Promise<(rec: AddressRecord) => boolean | undefined>;
  /** Reconcile every this many ms (default 60 000). */
  intervalMs?: number;
  /** The affinity lease's TTL in seconds (default 30). */
  ttlSec?: number;
}

/** Counters of the controller (rendered on /metrics). */
interface IpamStats {
  passes: number;
  failed: number;
  released: number;
  blocksReleased: number;
}

/** Starts the affinity keeper and the reconcile timer; see the module doc. */
export const startIpam: StartController<IpamContext> = async (ctx) => {
  const affinity = await startNodeAffinity({
    ...ctx,
    now: () => ctx.clock.now().getTime(),
    onError: (e) => ctx.log(`cluster IPAM: cannot grant the affinity lease again: ${e.message}`),
  });
  const ipam = new IpamController(ctx, affinity);
  ipam.registerMetrics();
  ctx.log(`cluster IPAM: node "${ctx.node}" keeps its block affinity (lease ${affinity.lease})`);
  return ipam;
};

/** The running controller: one pass at a time, on the timer or when asked. */
class IpamController implements Controller {
  readonly name = "ipam";
  readonly #ctx: IpamContext;
  readonly #affinity: NodeAffinity;
  readonly #cancel: () => void;
  readonly #stats: IpamStats = { passes: 0, failed: 0, released: 0, blocksReleased: 0 };
  #running: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(ctx: IpamContext, affinity: NodeAffinity) {
    this.#ctx = ctx;
    this.#affinity = affinity;
    this.#cancel = ctx.clock.every(ctx.intervalMs ?? 60_000, () => void this.reconcile());
  }

  /** Runs one pass after the one under way (never two at once); a no-op once closed. */
  reconcile(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#running = this.#running.then(() => this.#closed ? undefined : this.#pass());
    return this.#running;
  }

  /** Stops the timer, waits for the pass under way, stops refreshing the lease. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return await this.#running;
    this.#closed = true;
    this.#cancel();
    await this.#running;
    await this.#affinity.stop();
  }

  /** Journal replay, then reconcile; an error is logged and counted, the next pass runs. */
  async #pass(): Promise<void> {
    const c = this.#ctx;
    const prefix = c.prefix ?? "/podplex/ipam/v1";
    this.#stats.passes++;
    try {
      await this.#affinity.ensure();
      await replayJournalDir(c.etcd, journalDir(c.dataDir, c.node), prefix, c.node);
      const alive = await c.attachments();
      this.#report(await reconcile({ ...c, prefix, alive, now: () => c.clock.now().getTime() }));
    } catch (err) {
      this.#stats.failed++;
      c.log(`cluster IPAM reconcile failed: ${(err as Error).message}`);
    }
  }

  #report(r: ReconcileReport): void {
    this.#stats.released += r.released.length;
    this.#stats.blocksReleased += r.blocksReleased.length;
    if (r.released.length || r.blocksReleased.length) {
      this.#ctx.log(
        `cluster IPAM reconcile: ${r.released.length} addresses, ${r.blocksReleased.length} blocks released`,
      );
    }
  }

  registerMetrics(): void {
    const s = this.#stats;
    const family = (name: string, help: string, read: () => number) =>
      this.#ctx.metrics.register({ name, help, type: "counter", read: () => [{ value: read() }] });
    family(
      "podplex_cluster_ipam_reconciles_total",
      "Cluster IPAM reconcile passes run",
      () => s.passes,
    );
    family("podplex_cluster_ipam_reconcile_failures_total", "Passes that failed", () => s.failed);
    family(
      "podplex_cluster_ipam_released_total",
      "Addresses released by reconcile",
      () => s.released,
    );
    family("podplex_cluster_ipam_blocks_released_total", "Blocks released", () => s.blocksReleased);
    family(
      "podplex_cluster_ipam_lease_grants_total",
      "Affinity lease grants",
      () => this.#affinity.grants,
    );
  }
}
