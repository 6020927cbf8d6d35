/**
 * The overlay controller: one node agent (`agent.ts`) per cluster network conf, as
 * `podplex serve --cluster-network FILE...` runs them. Each agent joins (node subnet lease),
 * keeps its lease alive and keeps the VTEP's entries equal to the other nodes' leases.
 *
 * @module
 */
import type { Controller, ControllerContext } from "../controller.ts";
import { type NodeAgent, type PodCidrSource, startNodeAgents } from "./agent.ts";

/** What the overlay controller is started with. */
export interface OverlayContext extends ControllerContext {
  /** The cluster network conf files (conf or conflist with a `podplex-cluster` plugin). */
  confFiles: string[];
  /** The Node's podCIDR per conf that asks for it (`kubeSubnetMgr`): the Kubernetes client. */
  podCidrs?: PodCidrSource;
}

/** The running overlay controller; `agents` for the tests and `podplex net`. */
export interface OverlayController extends Controller {
  readonly agents: readonly NodeAgent[];
}

/**
 * Starts the agents; each first join runs in the background (a daemon starts while etcd is
 * down). `reconcile()` re-lists every network's leases and syncs the kernel.
 *
 * @throws {CniError} code 7 for a bad conf (the agents started are stopped again)
 */
export async function startOverlay(ctx: OverlayContext): Promise<OverlayController> {
  const started = await startNodeAgents(
    ctx.confFiles,
    { log: ctx.log, clock: ctx.clock },
    ctx.podCidrs,
  );
  let closed: Promise<void> | undefined;
  const c: OverlayController = {
    name: "overlay",
    agents: started.agents,
    reconcile: async () => {
      if (closed) return;
      await Promise.all(started.agents.map((a) => a.resync()));
    },
    close: () => closed ??= started.stop(),
  };
  return c;
}
