/**
 * Warm Kubernetes state for a resident daemon: this node's pods and every NAD kept by
 * LIST then WATCH (resourceVersion, bookmarks, a new LIST on 410 Gone), so that an ADD
 * reads its pod's annotations and its NADs with no API round trip. A GET answers whatever
 * the cache cannot: before the first LIST, while the watch is broken (the cache may be
 * stale then), for a pod not (yet) seen or of another UID, for a NAD not seen (it may be
 * new). Writes (network-status) always go to the API.
 *
 * Multus thick keeps node-filtered pod and NAD informers the same way.
 *
 * @module
 */
import {
  type ClosableKubeClient,
  GoneError,
  type NadInfo,
  nadInfo,
  nadsPath,
  type PodInfo,
  podInfo,
  type WatchEvent,
} from "./client.ts";

/** Counters of the watched state (the daemon's metrics). */
export interface WatchStats {
  /** Reads answered from the cache, by resource. */
  hits: Record<"pods" | "nads", number>;
  /** Reads that went to the API (GET), by resource. */
  gets: Record<"pods" | "nads", number>;
  /** LISTs made (the first, and one per 410 or broken watch). */
  lists: number;
  /** Watch events applied. */
  events: number;
  /** Watches that failed (then retried after a pause). */
  errors: number;
}

/** One kept collection. */
interface Informer<T> {
  /** Whether the cache is current: listed, and the watch since then unbroken. */
  readonly live: boolean;
  get(key: string): T | undefined;
  readonly size: number;
  close(): void;
}

interface InformerOptions<T> {
  path: string;
  parse(obj: unknown): T | undefined;
  stats: WatchStats;
  /** Server-side watch length (s): the stream ends and is resumed from the last version. */
  timeoutSeconds: number;
  /** Pause after a failure (ms), doubled up to 30 s. */
  backoffMs: number;
  log(line: string): void;
  /** Told of every object change applied, and of every LIST (`LISTED`, no key). */
  notify?(type: PodChange["type"], key?: string, value?: T): void;
}

/** A change of this node's pods, as the watch saw it (`LISTED`: the cache was listed anew). */
export interface PodChange {
  type: "ADDED" | "MODIFIED" | "DELETED" | "LISTED";
  /** `ns/name` (absent for `LISTED`). */
  key?: string;
  /** The pod as it is now (absent for `DELETED` and `LISTED`). */
  pod?: PodInfo;
}

function keyOf(obj: Record<string, unknown>): string | undefined {
  const m = obj.metadata as { name?: unknown; namespace?: unknown } | undefined;
  return typeof m?.name === "string" ? `${m.namespace ?? ""}/${m.name}` : undefined;
}

function versionOf(obj: Record<string, unknown>): string | undefined {
  const rv = (obj.metadata as { resourceVersion?: unknown } | undefined)?.resourceVersion;
  return typeof rv === "string" ? rv : undefined;
}

const sep = (path: string) => path.includes("?") ? "&" : "?";

function startInformer<T>(api: ClosableKubeClient, o: InformerOptions<T>): Informer<T> {
  const store = new Map<string, T>();
  const stop = new AbortController();
  let live = false;
  let rv: string | undefined;

  const apply = (ev: WatchEvent): void => {
    const key = keyOf(ev.object);
    if (ev.type === "ERROR") {
      const code = (ev.object as { code?: unknown }).code;
      if (code === 410) throw new GoneError(`Watch of "${o.path}": 410 Gone`);
      throw new Error(`Watch of "${o.path}": ${JSON.stringify(ev.object).slice(0, 300)}`);
    }
    rv = versionOf(ev.object) ?? rv;
    o.stats.events++;
    if (ev.type === "BOOKMARK" || key === undefined) return;
    if (ev.type === "DELETED") {
      store.delete(key);
      o.notify?.("DELETED", key);
    } else {
      const v = o.parse(ev.object);
      if (v === undefined) store.delete(key);
      else store.set(key, v);
      o.notify?.(ev.type, key, v);
    }
  };

  const relist = async (): Promise<void> => {
    const list = await api.list(o.path);
    store.clear();
    for (const item of list.items) {
      const key = keyOf(item as Record<string, unknown>);
      const v = o.parse(item);
      if (key !== undefined && v !== undefined) store.set(key, v);
    }
    rv = list.resourceVersion;
    o.stats.lists++;
    o.notify?.("LISTED");
  };

  const loop = async (): Promise<void> => {
    let pause = o.backoffMs;
    while (!stop.signal.aborted) {
      try {
        if (rv === undefined) await relist();
        live = true;
        const path = `${o.path}${sep(o.path)}watch=1&allowWatchBookmarks=true` +
          `&resourceVersion=${encodeURIComponent(rv!)}&timeoutSeconds=${o.timeoutSeconds}`;
        for await (const ev of api.watch(path, stop.signal)) apply(ev);
        pause = o.backoffMs; // a stream that ran its time: resume from the last version
      } catch (e) {
        live = false;
        if (stop.signal.aborted) return;
        if (e instanceof GoneError) {
          rv = undefined; // the version is compacted away: list again, now
          continue;
        }
        o.stats.errors++;
        o.log(`watch of "${o.path}" failed, retrying in ${pause} ms: ${(e as Error).message}`);
        rv = undefined; // events may have been missed: the next round lists again
        await new Promise((r) => setTimeout(r, pause));
        pause = Math.min(pause * 2, 30_000);
      }
    }
  };
  loop();
  return {
    get live() {
      return live;
    },
    get: (key) => store.get(key),
    get size() {
      return store.size;
    },
    close() {
      live = false;
      stop.abort();
    },
  };
}

/** Options of {@linkcode watchedKube}. */
export interface WatchedKubeOptions {
  /** This node's name: only its pods are kept (spec.nodeName). */
  nodeName: string;
  /** Server-side length of one watch (s), default 300. */
  timeoutSeconds?: number;
  /** First pause after a failed watch (ms), default 500. */
  backoffMs?: number;
  log?: (line: string) => void;
}

/** A client whose reads come from watched caches; `stats` and `sizes` for the metrics. */
export interface WatchedKubeClient extends ClosableKubeClient {
  readonly stats: WatchStats;
  /** Objects held, and whether each cache is live. */
  sizes(): { pods: number; nads: number; podsLive: boolean; nadsLive: boolean };
  /**
   * Calls `listener` after each change of this node's pods is in the cache (and after each
   * LIST); returns the unsubscribe.
   */
  onPods(listener: (change: PodChange) => void): () => void;
}

/**
 * Wraps `api`: this node's pods and every NAD are watched from now on, reads are answered
 * from them when they can be (see the module doc), everything else goes to `api`.
 * `close()` stops the watches and closes `api`.
 */
export function watchedKube(api: ClosableKubeClient, opts: WatchedKubeOptions): WatchedKubeClient {
  const stats: WatchStats = {
    hits: { pods: 0, nads: 0 },
    gets: { pods: 0, nads: 0 },
    lists: 0,
    events: 0,
    errors: 0,
  };
  const common = {
    stats,
    timeoutSeconds: opts.timeoutSeconds ?? 300,
    backoffMs: opts.backoffMs ?? 500,
    log: opts.log ?? (() => {}),
  };
  const selector = encodeURIComponent(`spec.nodeName=${opts.nodeName}`);
  const listeners = new Set<(change: PodChange) => void>();
  const pods = startInformer<PodInfo>(api, {
    ...common,
    path: `/api/v1/pods?fieldSelector=${selector}`,
    parse: podInfo,
    notify(type, key, pod) {
      for (const l of listeners) {
        try {
          l({ type, key, pod });
        } catch (e) {
          common.log(`pod listener failed: ${(e as Error).message}`);
        }
      }
    },
  });
  const nads = startInformer<NadInfo>(api, {
    ...common,
    path: nadsPath(),
    parse: (o) => nadInfo(o),
  });
  const client: WatchedKubeClient = {
    ...api,
    stats,
    sizes: () => ({ pods: pods.size, nads: nads.size, podsLive: pods.live, nadsLive: nads.live }),
    onPods(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    getPod(ns, name, uid) {
      const held = pods.live ? pods.get(`${ns}/${name}`) : undefined;
      // Another UID: the pod was recreated and the watch has not told yet; ask the API.
      if (held && (uid === undefined || held.uid === uid)) {
        stats.hits.pods++;
        return Promise.resolve(held);
      }
      stats.gets.pods++;
      return api.getPod(ns, name);
    },
    getNad(ns, name) {
      const held = nads.live ? nads.get(`${ns}/${name}`) : undefined;
      if (held) {
        stats.hits.nads++;
        return Promise.resolve(held);
      }
      stats.gets.nads++;
      return api.getNad(ns, name);
    },
    close() {
      pods.close();
      nads.close();
      api.close();
    },
    [Symbol.dispose]() {
      client.close();
    },
  };
  return client;
}
