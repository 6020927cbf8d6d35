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
  type NadInfo,
  nadInfo,
  nadsPath,
  type PodInfo,
  podInfo,
} from "./client.ts";
import { startInformer } from "./informer.ts";

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

/** A change of this node's pods, as the watch saw it (`LISTED`: the cache was listed anew). */
export interface PodChange {
  type: "ADDED" | "MODIFIED" | "DELETED" | "LISTED";
  /** `ns/name` (absent for `LISTED`). */
  key?: string;
  /** The pod as it is now (absent for `DELETED` and `LISTED`). */
  pod?: PodInfo;
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
    notify({ type, key, value: pod }) {
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
