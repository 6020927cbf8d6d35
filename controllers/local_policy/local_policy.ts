/**
 * `podplex serve` without `--network-policy`: the local policies of the podplex conf's
 * policiesDir (meta/policy/local.ts) followed as they change. A change of a file under the
 * folder (written, renamed, removed; in any namespace folder) re-renders every local pod's
 * table, as `podplex policy apply` does, a short debounce after the last event of a burst
 * (an editor's save is several events; a `cp -r` many).
 *
 * The folder may not exist when the daemon starts, and may be removed or replaced later: a
 * rare look at it (every `pollMs`) notices when it appears, goes or is another folder (its
 * inode), and then (re)opens the recursive watch and re-renders. A watch that ends or fails
 * is opened again at the next look. At start, a folder holding a policy file re-renders
 * every pod once (files may have changed while no daemon ran); one without leaves the
 * pods' tables alone (a node that never had a local policy has its pods' netns untouched).
 *
 * @module
 */
import { hasPolicyFiles } from "../../meta/policy/lazy.ts";
import { loadLocalPolicies, reapplyLocal } from "../../meta/policy/local.ts";
import type { TableApplier } from "../../meta/policy/source.ts";
import type { PodState } from "../../meta/state.ts";
import type { Cancel, Controller, ControllerContext, StartController } from "../controller.ts";

/** A recursive watch of a folder: its events (any kind), and how to stop it. */
export interface DirWatch extends AsyncIterable<unknown> {
  close(): void;
}

/** What the controller is started with. */
export interface LocalPolicyContext extends ControllerContext {
  /** The policiesDir (`<dir>/<namespace>/*.{yaml,yml,json}`). */
  dir: string;
  /** The local pods' states (the conf's state store). */
  states(): Promise<PodState[]>;
  /** Replaces a pod's table in a netns, one transaction. */
  apply: TableApplier;
  /** Opens a recursive watch of `dir` (the daemon: Deno.watchFs). */
  watch(dir: string): DirWatch;
  /** Quiet time after the last event before the pods are re-rendered (ms, default 75). */
  debounceMs?: number;
  /** How often the folder itself is looked at (ms, default 1000). */
  pollMs?: number;
}

/** Counters (the metrics read them; tests too). */
export interface LocalPolicyStats {
  /** Passes that re-rendered every local pod. */
  passes: number;
  /** Tables that could not be applied. */
  failures: number;
  /** Policies in force after the last pass. */
  policies: number;
}

/** The running controller. */
export interface LocalPolicyController extends Controller {
  readonly stats: LocalPolicyStats;
}

/** The folder's identity now: its inode, or undefined when it is not a folder. */
function identity(dir: string): number | undefined {
  try {
    const st = Deno.statSync(dir);
    return st.isDirectory ? (st.ino ?? 0) : undefined;
  } catch {
    return undefined;
  }
}

/** Starts following `ctx.dir`. */
export const startLocalPolicy: StartController<LocalPolicyContext> = async (ctx) => {
  const stats: LocalPolicyStats = { passes: 0, failures: 0, policies: 0 };
  const logged = new Set<string>();
  let closed = false;
  let watch: { w: DirWatch; ino: number | undefined; done: Promise<void> } | undefined;
  let debounce: Cancel | undefined;
  let running: Promise<void> | undefined;
  let again = false;

  const say = (line: string) => {
    if (!logged.has(line)) (logged.add(line), ctx.log(`local policy: ${line}`));
  };

  /** One pass: the files read, every local pod's table replaced. */
  async function pass(): Promise<void> {
    const local = await loadLocalPolicies(ctx.dir);
    for (const i of local?.issues ?? []) {
      say(`${i.policy}: ${i.field ? `${i.field} ` : ""}${i.msg} (dropped)`);
    }
    const done = await reapplyLocal(local, await ctx.states(), ctx.apply);
    stats.passes++;
    stats.policies = local?.policies.length ?? 0;
    const failed = done.filter((d) => d.error);
    stats.failures += failed.length;
    for (const d of failed) ctx.log(`local policy: pod "${d.pod}" in "${d.netns}": ${d.error}`);
    const isolated = done.filter((d) => d.isolated.length).length;
    ctx.log(
      `local policy: ${stats.policies} ${stats.policies === 1 ? "policy" : "policies"} in ` +
        `${ctx.dir}: ${done.length} pods re-rendered ` +
        `(${isolated} isolated, ${failed.length} failed)`,
    );
  }

  /** Runs a pass now, or once more after the one running (never two at once). */
  function run(): Promise<void> {
    if (closed) return Promise.resolve();
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await pass().catch((e) => ctx.log(`local policy: cannot re-render: ${e}`));
      } while (again && !closed);
    })().finally(() => running = undefined);
    return running;
  }

  function soon(): void {
    debounce?.();
    debounce = ctx.clock.after(ctx.debounceMs ?? 75, () => {
      debounce = undefined;
      void run();
    });
  }

  /** Follows the events of one watch until it ends. */
  async function follow(w: DirWatch): Promise<void> {
    try {
      for await (const _ of w) if (!closed) soon();
    } catch (e) {
      if (!closed) ctx.log(`local policy: the watch of ${ctx.dir} failed: ${e}`);
    }
    if (watch?.w === w) watch = undefined; // opened again at the next look
  }

  function closeWatch(): void {
    const w = watch?.w;
    watch = undefined;
    try {
      w?.close();
    } catch { /* closed already */ }
  }

  /**
   * Looks at the folder: a watch on the folder there is now (none when it is not there).
   * @returns whether the folder is another than before (appeared, went, replaced)
   */
  function look(): boolean {
    const ino = identity(ctx.dir);
    if (watch && watch.ino === ino) return false;
    const changed = watch ? true : ino !== undefined;
    closeWatch();
    if (ino === undefined) return changed;
    try {
      const w = ctx.watch(ctx.dir);
      watch = { w, ino, done: Promise.resolve() };
      watch.done = follow(w);
    } catch (e) {
      say(`cannot watch ${ctx.dir}: ${e}`); // tried again at the next look
    }
    return changed;
  }

  // A folder gone between two looks leaves the pass to remove the tables (no files: none).
  const poll = ctx.clock.every(ctx.pollMs ?? 1000, () => {
    const before = watch !== undefined;
    if (look() && (before || hasPolicyFiles(ctx.dir))) soon();
  });

  ctx.metrics.register({
    name: "podplex_local_policy_passes_total",
    help: "Passes that re-rendered every local pod's table after the policiesDir changed.",
    type: "counter",
    read: () => [{ value: stats.passes }],
  });
  ctx.metrics.register({
    name: "podplex_local_policy_failures_total",
    help: "Local pod tables that could not be applied.",
    type: "counter",
    read: () => [{ value: stats.failures }],
  });
  ctx.metrics.register({
    name: "podplex_local_policy_policies",
    help: "Local policies in force after the last pass.",
    type: "gauge",
    read: () => [{ value: stats.policies }],
  });

  look();
  if (watch) ctx.log(`local policy: watching ${ctx.dir}`);
  else {ctx.log(
      `local policy: ${ctx.dir} does not exist yet; looked for every ${ctx.pollMs ?? 1000} ms`,
    );}
  if (watch && hasPolicyFiles(ctx.dir)) await run();

  return {
    name: "local-policy",
    stats,
    reconcile: () => run(),
    async close() {
      if (closed) return;
      closed = true;
      poll();
      debounce?.();
      const done = watch?.done;
      closeWatch();
      await done;
      await running;
    },
  };
};
