/**
 * `podplex serve --network-policy`: NetworkPolicy on the cluster network and
 * MultiNetworkPolicy on secondary networks, enforced in the netns of each pod podplex ADDed
 * on this node (one nftables table per pod, meta/policy/render.ts).
 *
 * It LISTs and WATCHes the cluster's pods (labels, addresses, container ports), namespaces
 * (labels), `networking.k8s.io/v1` NetworkPolicies and `k8s.cni.cncf.io`
 * MultiNetworkPolicies (v1beta2, else v1beta1: a CRD serves both as the same objects; with
 * no CRD there are none, looked for again every minute), and finds this node's pods in
 * podplex's state store (which knows each one's netns). A change re-renders only the pods
 * it can affect (affected.ts); a table that comes out the same is not written again, one that
 * differs is written as an update of what changed (incremental.ts), else whole, each as one
 * transaction by {@linkcode PolicyContext.apply}. A pass resolves each peer once for all the
 * pods it renders (one world snapshot).
 *
 * Before the first sync nothing is touched (tables a previous daemon wrote stay) and an ADD
 * asking {@linkcode PolicyController.source} is told `"unsynced"` (its pod starts deny-all);
 * the first sync renders every local pod, which opens those. A lost watch lists again, and
 * every local pod is rendered again then (only the changed tables are written). A rule that
 * cannot be applied is dropped (parse.ts), logged once and counted; never a crash.
 *
 * @module
 */
import type { InformerChange, ListWatchClient } from "../../clients/k8s/informer.ts";
import type { PodState } from "../../meta/state.ts";
import type { PolicySource } from "../../meta/policy/source.ts";
import { renderPodTable } from "../../meta/policy/render.ts";
import { type PeerCache, resolvePod } from "../../meta/policy/resolve.ts";
import type { PodView, PolicyWorld } from "../../meta/policy/types.ts";
import type { Cancel, Controller, ControllerContext } from "../controller.ts";
import {
  podChangeTouches,
  sameLabels,
  sameView,
  selects,
  usesNamespaceLabels,
} from "./affected.ts";
import type { ApiPod, ApiPolicy } from "./objects.ts";
import { localPods } from "./objects.ts";
import { PATHS, watchCollections } from "./collections.ts";
import { WorldView } from "./world.ts";
import { registerPolicyMetrics } from "./metrics.ts";
import { tableUpdate } from "./incremental.ts";

export { PATHS };

/** What the controller is started with. */
export interface PolicyContext extends ControllerContext {
  /** The API server (LIST and WATCH). */
  api: ListWatchClient;
  /** This node's pod states (podplex's state store). */
  states(): Promise<PodState[]>;
  /** Replaces a pod's table in the netns at `netns` with `script`, as one transaction. */
  apply(netns: string, script: string): Promise<void>;
  /**
   * Whether the netns at `netns` holds a podplex table (asked before writing a removal to a
   * pod this daemon never wrote: one its ADD or a previous daemon gave a table); without it,
   * the removal is written.
   */
  hasTable?(netns: string): Promise<boolean>;
  /** This node's name: a pod event of this node for a pod not known yet reads the states. */
  nodeName?: string;
  /** Every local pod rendered again, the states read again (ms, default 30 000). */
  resyncMs?: number;
  /** Server-side watch length (s, default 300); pause after a failed watch (ms, default 500). */
  watchTimeoutSeconds?: number;
  backoffMs?: number;
  /** Objects per LIST page (default 500). */
  pageSize?: number;
}

/** What an ADD asks: every call of the daemon judges its pod in the controller's view. */
export interface DaemonPolicySource extends PolicySource {
  /** After an ADD or DEL: the states are read again and the pods it touches rendered. */
  podChanged(pod: PodView, gone: boolean): Promise<void>;
}

/** Counters (the metrics read them; tests too). */
export interface PolicyStats {
  /** Tables written (a render whose table changed). */
  renders: number;
  /** Pods whose rules were resolved (written or found the same). */
  resolved: number;
  /** Of `renders`: written as an update (tableUpdate), not as the whole table. */
  updates: number;
  /** Tables that could not be written. */
  renderErrors: number;
  /** When the last LIST of every collection ended (ms since the epoch; 0: never). */
  lastSync: number;
}

/** The running controller. */
export interface PolicyController extends Controller {
  readonly source: DaemonPolicySource;
  readonly stats: PolicyStats;
  readonly synced: boolean;
  /** Local pods with a table now. */
  enforced(): number;
  /** Rules dropped now (by parsing, and named ports no container has). */
  dropped(): number;
  /** Resolves when no render is pending or running. */
  idle(): Promise<void>;
}

/** Whether a rendered script makes a table (else it removes the pod's table). */
const isTable = (s: string) => s.includes("{");

/** Starts the controller: the LISTs run at once; nothing is rendered before they all end. */
export function startNetworkPolicy(ctx: PolicyContext): Promise<PolicyController> {
  const stats: PolicyStats = {
    renders: 0,
    updates: 0,
    resolved: 0,
    renderErrors: 0,
    lastSync: 0,
  };
  const applied = new Map<string, string>();
  const unresolved = new Map<string, number>();
  const logged = new Set<string>();
  const dirty = new Set<string>();
  let all = false;
  let closed = false;
  let wasSynced = false;
  let running: Promise<void> | undefined;

  const c = watchCollections(ctx, { onPod, onNamespace, onPolicy });
  const w = new WorldView(c);

  /** Marks the local pods `pred` holds for (over their views now). */
  function mark(pred: (view: PodView) => boolean): void {
    for (const key of w.locals.keys()) {
      const v = w.view(key);
      if (v && pred(v)) dirty.add(key);
    }
  }

  function listed(): void {
    if (!w.synced) return;
    if (!wasSynced) ctx.log("network policy: synced with the API server");
    wasSynced = true;
    stats.lastSync = ctx.clock.now().getTime();
    all = true;
    kick();
  }

  function onPod(ch: InformerChange<ApiPod>): void {
    w.changed();
    if (ch.type === "LISTED") return listed();
    const key = ch.key!;
    const local = w.locals.has(key);
    const mine = ctx.nodeName !== undefined && ch.value?.nodeName === ctx.nodeName;
    if ((mine && !local) || (ch.type === "DELETED" && local)) requestScan();
    const before = ch.old?.view;
    const after = ch.value?.view;
    if (sameView(before, after)) return;
    if (local) dirty.add(key);
    for (const p of w.policies()) {
      if (podChangeTouches(p, before, after)) mark((v) => selects(p, v));
    }
    kick();
  }

  function onNamespace(ch: InformerChange<{ labels: Record<string, string> }>): void {
    w.changed();
    if (ch.type === "LISTED") return listed();
    if (sameLabels(ch.old?.labels, ch.value?.labels) && ch.old && ch.value) return;
    for (const p of w.policies()) if (usesNamespaceLabels(p)) mark((v) => selects(p, v));
    kick();
  }

  function onPolicy(ch: InformerChange<ApiPolicy>): void {
    w.changed();
    if (ch.type === "LISTED") {
      for (const p of [...c.networkPolicies.values(), ...c.multiPolicies.values()]) report(p);
      return listed();
    }
    if (ch.value) report(ch.value);
    else if (ch.old) forget(ch.old.id);
    for (const p of [ch.old?.policy, ch.value?.policy]) if (p) mark((v) => selects(p, v));
    kick();
  }

  /** Logs each dropped rule of a policy once (per policy and message). */
  function report(p: ApiPolicy): void {
    for (const i of p.issues) {
      const line = `network policy: ${i.policy}: ${i.field} ${i.msg}`;
      if (logged.has(line)) continue;
      logged.add(line);
      ctx.log(line);
    }
  }

  function forget(id: string): void {
    for (const l of logged) if (l.startsWith(`network policy: ${id}:`)) logged.delete(l);
  }

  // The states: read after each ADD/DEL, on node pod events and on resync, one read at once.
  let scanning: Promise<void> | undefined;
  let rescan = false;
  function requestScan(): Promise<void> {
    if (closed) return Promise.resolve();
    if (scanning) {
      rescan = true;
      return scanning;
    }
    scanning = (async () => {
      do {
        rescan = false;
        await scan().catch((e) => ctx.log(`network policy: cannot read the pods' states: ${e}`));
      } while (rescan && !closed);
    })().finally(() => (scanning = undefined));
    return scanning;
  }

  async function scan(): Promise<void> {
    const now = localPods(await ctx.states());
    const before = new Map([...w.locals.keys()].map((k) => [k, w.view(k)]));
    const changed: string[] = [];
    for (const [key, p] of now) {
      const had = w.locals.get(key);
      if (had && had.netns === p.netns && JSON.stringify(had) === JSON.stringify(p)) continue;
      // A new netns or sandbox: what its ADD wrote is not what this daemon last wrote.
      if (!had || had.netns !== p.netns || had.containerId !== p.containerId) applied.delete(key);
      w.locals.set(key, p);
      changed.push(key);
    }
    for (const key of [...w.locals.keys()]) {
      if (now.has(key)) continue;
      w.locals.delete(key);
      applied.delete(key);
      unresolved.delete(key);
      for (const l of logged) if (l.includes(`pod "${key}"`)) logged.delete(l); // said again if it comes back
      changed.push(key);
    }
    if (changed.length === 0) return;
    w.changed();
    for (const key of changed) {
      if (w.locals.has(key)) dirty.add(key);
      const after = w.view(key);
      for (const p of w.policies()) {
        if (podChangeTouches(p, before.get(key), after)) mark((v) => selects(p, v));
      }
    }
    kick();
  }

  function kick(): void {
    if (closed || !w.synced || running) return;
    running = pass().finally(() => {
      running = undefined;
      if (dirty.size || all) kick();
    });
  }

  async function pass(): Promise<void> {
    while ((dirty.size || all) && !closed) {
      const keys = all ? [...w.locals.keys()] : [...dirty].filter((k) => w.locals.has(k));
      all = false;
      dirty.clear();
      const world = w.world();
      const index = new Map(world.pods.map((p) => [`${p.namespace}/${p.name}`, p]));
      const peers: PeerCache = new Map(); // the world is this pass's snapshot: peers hold
      for (const key of keys) {
        if (closed) return;
        await render(key, world, peers, index.get(key));
      }
    }
  }

  async function render(
    key: string,
    world: PolicyWorld,
    peers: PeerCache,
    view?: PodView,
  ): Promise<void> {
    const local = w.locals.get(key);
    if (!local || !view) return;
    const rules = resolvePod(world, view, peers);
    stats.resolved++;
    const missing = rules.interfaces.flatMap((i) => [
      ...i.ingress?.unresolved ?? [],
      ...i.egress?.unresolved ?? [],
    ]);
    unresolved.set(key, missing.length);
    for (const u of missing) {
      const line = `network policy of pod "${key}": ${u} names a port no container has: ` +
        `that port stays closed`;
      if (!logged.has(line)) (logged.add(line), ctx.log(line));
    }
    const script = renderPodTable(rules);
    if (applied.get(key) === script) return;
    if (!isTable(script) && !applied.has(key) && ctx.hasTable) {
      // Never written by this daemon and none wanted: a removal only if one is there.
      if (!(await ctx.hasTable(local.netns).catch(() => true))) {
        return void applied.set(key, script);
      }
    }
    try {
      const had = applied.get(key);
      const update = had === undefined ? undefined : tableUpdate(had, script);
      if (update) {
        // A table changed by hand (or gone) refuses the update: then the whole table.
        await ctx.apply(local.netns, update).then(() => stats.updates++, () => {
          return ctx.apply(local.netns, script);
        });
      } else await ctx.apply(local.netns, script);
      applied.set(key, script);
      stats.renders++;
    } catch (e) {
      stats.renderErrors++;
      applied.delete(key);
      const line = `network policy of pod "${key}": cannot apply its table in ` +
        `"${local.netns}": ${(e as Error).message}`;
      if (!logged.has(line)) (logged.add(line), ctx.log(line));
      requestScan(); // a netns gone: the pod may be gone too
    }
  }

  const source: DaemonPolicySource = {
    worldFor(pod) {
      if (!w.synced) return Promise.resolve("unsynced");
      const world = w.worldForAdd(pod);
      const self = world.pods[world.pods.length - 1];
      const any = world.policies.some((p) => selects(p, self));
      return Promise.resolve(any ? world : undefined);
    },
    podChanged() {
      void requestScan();
      return Promise.resolve();
    },
  };

  const resync: Cancel = ctx.clock.every(ctx.resyncMs ?? 30_000, () => {
    void controller.reconcile().catch((e) => ctx.log(`network policy: ${e}`));
  });

  const controller: PolicyController = {
    name: "policy",
    source,
    stats,
    get synced() {
      return w.synced;
    },
    enforced: () => [...applied.values()].filter(isTable).length,
    dropped: () =>
      [...c.networkPolicies.values(), ...c.multiPolicies.values()]
        .reduce((n, p) => n + p.issues.length, 0) +
      [...unresolved.values()].reduce((n, x) => n + x, 0),
    async idle() {
      while (scanning || running) await Promise.allSettled([scanning, running]);
    },
    async reconcile() {
      if (closed) return;
      await requestScan();
      all = true;
      kick();
      await controller.idle();
    },
    async close() {
      if (closed) return controller.idle();
      closed = true;
      resync();
      for (const i of Object.values(c)) i.close();
      await controller.idle();
    },
  };
  registerPolicyMetrics(ctx.metrics, controller, () => w.locals.size, () => ({
    pods: c.pods.size,
    namespaces: c.namespaces.size,
    networkpolicies: c.networkPolicies.size,
    multinetworkpolicies: c.multiPolicies.size,
  }));
  void requestScan();
  return Promise.resolve(controller);
}
