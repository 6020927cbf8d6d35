/**
 * One Kubernetes collection kept in memory by LIST then WATCH, as client-go's informers keep
 * theirs: the watch resumes from the last resourceVersion (bookmarks move it), a 410 Gone or
 * a broken watch lists again, and every change applied (and every LIST) is told to a
 * listener with the object before and after. The daemon's pod and NAD caches
 * (`watch.ts`) and the network policy controller (`controllers/policy`) keep theirs with it.
 *
 * @module
 */
import { type ClosableKubeClient, GoneError, type WatchEvent } from "./client.ts";

/** The calls an informer makes. */
export type ListWatchClient = Pick<ClosableKubeClient, "list" | "watch">;

/** What an informer counts (shared by the informers of one client). */
export interface InformerStats {
  /** LISTs made (the first, and one per 410 or broken watch). */
  lists: number;
  /** Watch events applied. */
  events: number;
  /** Watches that failed (then retried after a pause). */
  errors: number;
}

/** A change an informer tells: `LISTED` after each LIST (no key: the store was replaced). */
export interface InformerChange<T> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "LISTED";
  /** `ns/name` (`/name` for a cluster-scoped object); absent for `LISTED`. */
  key?: string;
  /** The object as it is now (absent for `DELETED` and `LISTED`). */
  value?: T;
  /** The object as it was before this change, when the store held it. */
  old?: T;
}

/** One kept collection. */
export interface Informer<T> {
  /** Whether the store is current: listed, and the watch since then unbroken. */
  readonly live: boolean;
  /** Whether a LIST has succeeded at least once (the store is complete as of some version). */
  readonly listed: boolean;
  get(key: string): T | undefined;
  values(): IterableIterator<T>;
  readonly size: number;
  close(): void;
}

/** Options of {@linkcode startInformer}. */
export interface InformerOptions<T> {
  /** The collection path (a query such as a fieldSelector may be in it). */
  path: string;
  /** The kept form of an object; undefined drops it from the store. */
  parse(obj: unknown): T | undefined;
  stats: InformerStats;
  /** Server-side watch length (s): the stream ends and is resumed from the last version. */
  timeoutSeconds: number;
  /** Pause after a failure (ms), doubled up to 30 s. */
  backoffMs: number;
  log(line: string): void;
  /** Told of every change applied, and of every LIST. */
  notify?(change: InformerChange<T>): void;
  /**
   * LIST in pages of this many objects (`limit`/`continue`, as client-go's pager), so a large
   * collection is never one response held whole; default: one LIST.
   */
  pageSize?: number;
  /** How a pause is slept (default: a timer); a controller hands in its clock's. */
  sleep?(ms: number, signal: AbortSignal): Promise<void>;
}

/** `ns/name` of an object (`/name` without a namespace), or undefined without a name. */
export function objectKey(obj: Record<string, unknown>): string | undefined {
  const m = obj.metadata as { name?: unknown; namespace?: unknown } | undefined;
  return typeof m?.name === "string" ? `${m.namespace ?? ""}/${m.name}` : undefined;
}

function versionOf(obj: Record<string, unknown>): string | undefined {
  const rv = (obj.metadata as { resourceVersion?: unknown } | undefined)?.resourceVersion;
  return typeof rv === "string" ? rv : undefined;
}

const sep = (path: string) => path.includes("?") ? "&" : "?";

function timerSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * Starts keeping the collection at `o.path` (the first LIST runs at once).
 *
 * @example
 * ```ts
 * const ns = startInformer(api, { path: "/api/v1/namespaces", parse: (o) => o, stats,
 *   timeoutSeconds: 300, backoffMs: 500, log: console.log });
 * ns.get("/default");
 * ```
 */
export function startInformer<T>(api: ListWatchClient, o: InformerOptions<T>): Informer<T> {
  const store = new Map<string, T>();
  const stop = new AbortController();
  const sleep = o.sleep ?? timerSleep;
  let live = false;
  let listed = false;
  let rv: string | undefined;

  const tell = (change: InformerChange<T>): void => {
    try {
      o.notify?.(change);
    } catch (e) {
      o.log(`listener of "${o.path}" failed: ${(e as Error).message}`);
    }
  };

  const apply = (ev: WatchEvent): void => {
    const key = objectKey(ev.object);
    if (ev.type === "ERROR") {
      const code = (ev.object as { code?: unknown }).code;
      if (code === 410) throw new GoneError(`Watch of "${o.path}": 410 Gone`);
      throw new Error(`Watch of "${o.path}": ${JSON.stringify(ev.object).slice(0, 300)}`);
    }
    rv = versionOf(ev.object) ?? rv;
    o.stats.events++;
    if (ev.type === "BOOKMARK" || key === undefined) return;
    const old = store.get(key);
    if (ev.type === "DELETED") {
      store.delete(key);
      return tell({ type: "DELETED", key, old });
    }
    const value = o.parse(ev.object);
    if (value === undefined) store.delete(key);
    else store.set(key, value);
    tell({ type: ev.type, key, value, old });
  };

  const relist = async (): Promise<void> => {
    // Pages are parsed as they come; the store is replaced once the last one is in.
    const fresh = new Map<string, T>();
    let token: string | undefined;
    let version: string | undefined;
    do {
      const page = o.pageSize === undefined
        ? o.path
        : `${o.path}${sep(o.path)}limit=${o.pageSize}` +
          (token === undefined ? "" : `&continue=${encodeURIComponent(token)}`);
      const list = await api.list(page);
      for (const item of list.items) {
        const key = objectKey(item as Record<string, unknown>);
        const v = o.parse(item);
        if (key !== undefined && v !== undefined) fresh.set(key, v);
      }
      version ??= list.resourceVersion; // every page is of the first one's snapshot
      token = o.pageSize === undefined ? undefined : list.continue;
    } while (token !== undefined);
    store.clear();
    for (const [k, v] of fresh) store.set(k, v);
    rv = version;
    o.stats.lists++;
    listed = true;
    tell({ type: "LISTED" });
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
        await sleep(pause, stop.signal);
        pause = Math.min(pause * 2, 30_000);
      }
    }
  };
  loop();
  return {
    get live() {
      return live;
    },
    get listed() {
      return listed;
    },
    get: (key) => store.get(key),
    values: () => store.values(),
    get size() {
      return store.size;
    },
    close() {
      live = false;
      stop.abort();
    },
  };
}
