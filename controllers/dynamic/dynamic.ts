/**
 * `podplex serve --dynamic-networks`: the hot-plug controller (the dynamic-networks controller). When the networks annotation
 * of a pod that podplex ADDed on this node changes, the pod's attachments are brought in line
 * with it (meta/hotplug.ts), under the pod's per-container lock (the scheduler key CNI calls
 * of that container take, so a kubelet DEL and a hot-plug never interleave); network-status
 * is PATCHed and an Event emitted after each change, as Multus and its dynamic-networks
 * controller emit them (Normal `AddedInterface` / `RemovedInterface`, Warning
 * `FailedAddingInterface` / `FailedRemovingInterface` with the CNI error).
 *
 * What it watches is the daemon's own watch of this node's pods (clients/k8s/watch.ts): every
 * API client the daemon holds is subscribed to (each kubeconfig a pod's ADD used; looked for
 * at start, from the states, and every {@linkcode DynamicContext.pollMs} among the clients the
 * calls made). Pods are found by their state (`stateDirs`), which also holds the podplex conf
 * their ADD ran with.
 *
 * A pod is acted on once per distinct value of its network annotations: a failed hot-plug is
 * tried again only when the annotation changes or the daemon restarts (no hot loop). On
 * start, on each subscription and after each re-LIST every pod is looked at once, so a
 * change missed while the daemon was down (or a hot-plug it was killed in) is finished. A pod
 * being deleted (deletionTimestamp) is left alone; one whose sandbox is being DELeted waits
 * for the lock and then finds no state.
 *
 * @module
 */
import { CniError } from "../../conf/errors.ts";
import {
  DEFAULT_NETWORK_ANNOTATION,
  GENIE_ANNOTATION,
  NETWORK_STATUS_ANNOTATION,
  NETWORKS_ANNOTATION,
} from "../../meta/annotations.ts";
import { parsePodplexConf } from "../../meta/conf.ts";
import type { PodplexConf } from "../../meta/conf.ts";
import type { HotplugChange, HotplugOutcome, HotplugRequest } from "../../meta/hotplug.ts";
import type { KubeClient } from "../../clients/k8s/client.ts";
import type { PodChange, WatchedKubeClient } from "../../clients/k8s/watch.ts";
import { createStateStore, type PodState } from "../../meta/state.ts";
import type { Cancel, Controller, ControllerContext } from "../controller.ts";
import { podEvent } from "./events.ts";

/** What the controller needs of the daemon's object graph (cli/root.ts's Root has it). */
export interface DynamicRoot {
  /** Brings a pod's attachments in line with its annotations (the caller holds its lock). */
  hotplug(req: HotplugRequest): Promise<HotplugOutcome>;
  /** The API client of a conf's kubeconfig (none without one). */
  kube(conf: PodplexConf): Promise<KubeClient | undefined>;
  /** The API clients in use now. */
  kubeClients(): KubeClient[];
}

/**
 * What {@linkcode DynamicContext.lock} rejects with when the daemon is too busy to start the
 * work (its scheduler refused it): the pod is looked at again a second later.
 */
export class LockBusy extends Error {}

/** What the controller is started with. */
export interface DynamicContext extends ControllerContext {
  /** The daemon's object graph (hot-plug, API clients). */
  root: DynamicRoot;
  /**
   * Runs `fn` under the pod's per-container lock (the daemon's scheduler key).
   *
   * @throws {LockBusy} when the daemon refused to start it
   */
  lock<T>(containerId: string, fn: () => Promise<T>): Promise<T>;
  /** Where the pods' states are. */
  stateDirs: string[];
  /** This node's name (the Events' source). */
  nodeName: string;
  /** How often the daemon's API clients are looked at for new ones (ms, default 1000). */
  pollMs?: number;
}

/** Counters for the metrics and the tests. */
export interface DynamicStats {
  /** Changes made (attachments plugged in or out). */
  changes: number;
  /** Changes that failed (and annotations refused as a whole). */
  failures: number;
  /** Pods looked at. */
  reconciles: number;
}

/** The running controller. */
export interface DynamicController extends Controller {
  readonly stats: DynamicStats;
  /** Looks at every pod once (new API clients subscribed first). */
  reconcile(): Promise<void>;
  /** Resolves when no pod is being worked on. */
  idle(): Promise<void>;
  /** Stops: no new work; what runs finishes. */
  close(): Promise<void>;
}

/** The annotations that decide a pod's attachments: their values, as one string. */
function fingerprint(annotations: Record<string, string>): string {
  return JSON.stringify(
    [NETWORKS_ANNOTATION, DEFAULT_NETWORK_ANNOTATION, GENIE_ANNOTATION].map((k) =>
      annotations[k] ?? null
    ),
  );
}

const podKey = (s: PodState) => `${s.podNamespace}/${s.podName}`;
const stateId = (s: PodState) => `${s.containerId}@${s.ifname}`;

/** Starts the controller; it looks at every pod once right away. */
export function startDynamicNetworks(ctx: DynamicContext): DynamicController {
  const stats: DynamicStats = { changes: 0, failures: 0, reconciles: 0 };
  const handled = new Map<string, string>();
  /** Per pod (`ns/name`): the annotations' fingerprint last looked at. */
  const seen = new Map<string, string>();
  /** Per pod: the states (`handled`'s keys) found for it, forgotten with the pod. */
  const idsOf = new Map<string, Set<string>>();
  const subscribed = new WeakSet<object>();
  const unsubscribe: (() => void)[] = [];
  const active = new Map<string, Promise<void>>();
  const dirty = new Set<string>();
  const retries = new Set<Cancel>();
  let closed = false;

  // Every state is written by a rename into its dir, which moves the dir's mtime: a dir whose
  // mtime did not move is listed from memory (a node's pods change status often). Deno gives
  // the mtime in ms, so a dir changed less than a second before its listing is not kept (a
  // second rename within the same ms would look like none).
  const listed = new Map<string, { mtime: number; states: PodState[] }>();
  async function listDir(dir: string): Promise<PodState[]> {
    const mtime = (await Deno.stat(dir).catch(() => null))?.mtime?.getTime() ?? -1;
    const held = listed.get(dir);
    if (held && held.mtime === mtime && mtime !== -1) return held.states;
    const states = await createStateStore(dir, { warn: ctx.log }).list().catch(() => []);
    if (ctx.clock.now().getTime() - mtime > 1000) listed.set(dir, { mtime, states });
    else listed.delete(dir);
    return states;
  }

  async function statesOf(key?: string): Promise<PodState[]> {
    const out: PodState[] = [];
    for (const dir of ctx.stateDirs) {
      for (const s of await listDir(dir)) {
        if (s.podNamespace && s.podName && (key === undefined || podKey(s) === key)) out.push(s);
      }
    }
    return out;
  }

  function enqueue(key: string): void {
    if (closed) return;
    if (active.has(key)) return void dirty.add(key);
    const work = (async () => {
      do {
        dirty.delete(key);
        await reconcilePod(key).catch((e) => {
          if (!(e instanceof LockBusy)) return ctx.log(`hot-plug of pod "${key}": ${e}`);
          // The daemon is full of calls: this pod is looked at again in a second.
          const cancel = ctx.clock.after(1000, () => (retries.delete(cancel), enqueue(key)));
          retries.add(cancel);
        });
      } while (dirty.has(key) && !closed);
    })().finally(() => active.delete(key));
    active.set(key, work);
  }

  async function enqueueAll(): Promise<void> {
    for (const key of new Set((await statesOf()).map(podKey))) enqueue(key);
  }

  function onPods(change: PodChange): void {
    if (change.type === "LISTED") return void enqueueAll();
    if (!change.key) return;
    if (change.type === "DELETED") {
      for (const id of idsOf.get(change.key) ?? []) handled.delete(id);
      idsOf.delete(change.key);
      return void seen.delete(change.key);
    }
    // Most changes of a pod are its status: the same network annotations need no look.
    if (change.pod && seen.get(change.key) === fingerprint(change.pod.annotations)) return;
    enqueue(change.key);
  }

  function subscribe(client: KubeClient | undefined): void {
    if (!client || !("onPods" in client) || subscribed.has(client)) return;
    subscribed.add(client);
    unsubscribe.push((client as WatchedKubeClient).onPods(onPods));
    void enqueueAll();
  }

  async function clientOf(state: PodState): Promise<KubeClient | undefined> {
    const conf = parsePodplexConf(state.hotplug!.conf);
    const client = await ctx.root.kube(conf);
    subscribe(client);
    return client;
  }

  async function reconcilePod(key: string): Promise<void> {
    const states = await statesOf(key);
    // Remembered only for a pod that has a state: one whose ADD has not written it yet is
    // looked at again on its next event.
    if (states.length === 0) seen.delete(key);
    for (const state of states) {
      if (closed) return;
      if (!state.hotplug) continue; // ADDed by an older podplex: left as it is
      const kube = await clientOf(state);
      if (!kube) continue;
      const pod = await kube.getPod(state.podNamespace!, state.podName!, state.podUid);
      if (!pod || pod.deleting) continue;
      if (state.podUid && pod.uid && pod.uid !== state.podUid) continue; // another sandbox's
      const fp = fingerprint(pod.annotations);
      seen.set(key, fp);
      idsOf.set(key, (idsOf.get(key) ?? new Set()).add(stateId(state)));
      const interrupted = state.attachments.some((a) => a.pending);
      const first = !handled.has(stateId(state));
      if (handled.get(stateId(state)) === fp && !interrupted) continue;
      handled.set(stateId(state), fp);
      stats.reconciles++;
      const after = await plug(kube, state, pod.annotations).catch((e) => {
        handled.delete(stateId(state)); // not tried (the lock refused it): next time it is
        throw e;
      });
      // A daemon killed between a change and its PATCH left the status behind: the first
      // look after a start writes it when it differs from the state's.
      if (first && after) await publishIfStale(kube, after, pod.annotations);
    }
  }

  async function plug(kube: KubeClient, state: PodState, annotations: Record<string, string>) {
    const [namespace, name] = [state.podNamespace!, state.podName!];
    const tell = async (change: HotplugChange | CniError, now: PodState) => {
      const ok = !(change instanceof CniError) && !change.error;
      if (ok) stats.changes++;
      else stats.failures++;
      const what = change instanceof CniError
        ? change.message
        : `${change.kind} ${change.network} as "${change.ifname}"` +
          (change.error ? ` failed: ${change.error.message}` : "");
      ctx.log(`hot-plug of pod "${namespace}/${name}": ${what}`);
      if (ok) {
        await kube.patchPodAnnotations(namespace, name, {
          [NETWORK_STATUS_ANNOTATION]: JSON.stringify(now.networkStatus ?? [], null, 2),
        }).catch((e) => ctx.log(`cannot write network-status to "${namespace}/${name}": ${e}`));
      }
      const event = podEvent(
        { namespace, name, uid: state.podUid },
        change,
        ctx.nodeName,
        ctx.clock.now(),
      );
      await (kube as { createEvent?: (ns: string, e: unknown) => Promise<void> }).createEvent?.(
        namespace,
        event,
      ).catch((e) => ctx.log(`cannot create an Event for "${namespace}/${name}": ${e}`));
    };
    return await ctx.lock(state.containerId, async () => {
      try {
        return (await ctx.root.hotplug({ state, annotations, onChange: (c, now) => tell(c, now) }))
          .state;
      } catch (e) {
        await tell(CniError.wrap(e), state); // the annotation as a whole was refused
        return null;
      }
    });
  }

  async function publishIfStale(
    kube: KubeClient,
    state: PodState,
    annotations: Record<string, string>,
  ): Promise<void> {
    const want = JSON.stringify(state.networkStatus ?? []);
    let has: string | undefined;
    try {
      has = JSON.stringify(JSON.parse(annotations[NETWORK_STATUS_ANNOTATION] ?? "null"));
    } catch { /* not JSON: rewritten */ }
    if (has === want) return;
    await kube.patchPodAnnotations(state.podNamespace!, state.podName!, {
      [NETWORK_STATUS_ANNOTATION]: JSON.stringify(state.networkStatus ?? [], null, 2),
    }).catch((e) => ctx.log(`cannot write network-status to "${podKey(state)}": ${e}`));
  }

  const poll = ctx.clock.every(ctx.pollMs ?? 1000, () => {
    for (const c of ctx.root.kubeClients()) subscribe(c);
  });

  const controller: DynamicController = {
    name: "dynamic",
    stats,
    async reconcile() {
      if (closed) return;
      for (const c of ctx.root.kubeClients()) subscribe(c);
      for (const s of await statesOf()) {
        if (s.hotplug) await clientOf(s).catch((e) => ctx.log(`hot-plug: ${e}`));
      }
      await enqueueAll();
    },
    async idle() {
      while (active.size) await Promise.allSettled([...active.values()]);
    },
    async close() {
      closed = true;
      poll();
      for (const cancel of retries) cancel();
      retries.clear();
      for (const u of unsubscribe.splice(0)) u();
      await controller.idle();
    },
  };
  void controller.reconcile().catch((e) => ctx.log(`hot-plug: ${e}`));
  return controller;
}
