/**
 * How the meta-plugin reads network definitions and confs from disk: directly (a per-call
 * run reads each file once anyway), or through a cache for a resident daemon that keeps
 * what it read and re-reads a file only when it changed.
 *
 * A cached entry is used while the file's identity and times are what they were when it was
 * read: device, inode, size, mtime and ctime (a rewrite, an atomic rename over it, a chmod
 * all change one). Deno gives mtime to the millisecond and ctime to the second, so a file
 * changed within the last second (its ctime's second counted whole) is read but not cached
 * (git's "racy clean" rule): a second write in the same tick, with the same size, cannot go
 * unseen. A directory's listing is cached
 * the same way (an entry added or removed changes its mtime). Anything that is not a
 * regular file is never cached: the bounded reader refuses it each time, at once.
 *
 * @module
 */
import { readBoundedTextSync } from "../conf/bounded_read.ts";
import { CniError, Code } from "../conf/errors.ts";

/** Reads definitions and confs. */
export interface DefinitionFiles {
  /** The entry names of a directory; none when it does not exist. */
  list(dir: string): Set<string>;
  /** A regular file's text (bounded); null when nothing is there. */
  read(path: string, what: string): string | null;
}

function listDirect(dir: string): Set<string> {
  const names = new Set<string>();
  try {
    for (const e of Deno.readDirSync(dir)) names.add(e.name);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
      return names;
    }
    throw CniError.wrap(err, Code.IoFailure, `Cannot list "${dir}"`);
  }
  return names;
}

/** No cache: every call lists and reads. */
export const DIRECT_FILES: DefinitionFiles = Object.freeze({
  list: listDirect,
  read: (path: string, what: string) => readBoundedTextSync(path, { what }),
});

/** Counters of a {@linkcode FileCache} (the daemon's metrics). */
export interface FileCacheStats {
  hits: number;
  misses: number;
}

/** A {@linkcode DefinitionFiles} that keeps what it read. */
export interface FileCache extends DefinitionFiles {
  readonly stats: FileCacheStats;
  /** How many entries it holds. */
  readonly size: number;
}

/** How recent a change may be for the entry to be cached (ms; see the module doc). */
const RACY_MS = 1000;

function stampOf(st: Deno.FileInfo): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtime?.getTime()}:${st.ctime?.getTime()}`;
}

function statOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.statSync(path);
  } catch {
    return null; // missing, or unreadable: the direct path says which
  }
}

/**
 * Creates a cache of at most `maxEntries` files and listings (the oldest go first).
 *
 * @example
 * ```ts
 * const files = createFileCache();
 * files.read("/etc/cni/podplex/networks.d/default/lan.json", "network definition");
 * ```
 */
export function createFileCache(maxEntries = 2048, now = () => Date.now()): FileCache {
  const entries = new Map<string, { stamp: string; value: unknown }>();
  const stats: FileCacheStats = { hits: 0, misses: 0 };

  function cached<T>(key: string, st: Deno.FileInfo | null, load: () => T): T {
    if (!st || !(st.isFile || st.isDirectory)) {
      entries.delete(key);
      return load(); // nothing there, or something the direct path refuses
    }
    const stamp = stampOf(st);
    const held = entries.get(key);
    if (held?.stamp === stamp) {
      stats.hits++;
      return held.value as T;
    }
    stats.misses++;
    const value = load();
    entries.delete(key);
    // ctime has whole seconds: the change may have been anywhere in that second.
    const changed = Math.max(st.mtime?.getTime() ?? 0, (st.ctime?.getTime() ?? 0) + 999);
    if (now() - changed > RACY_MS) {
      entries.set(key, { stamp, value });
      if (entries.size > maxEntries) entries.delete(entries.keys().next().value!);
    }
    return value;
  }

  return {
    stats,
    get size() {
      return entries.size;
    },
    list(dir) {
      const names = cached(`d:${dir}`, statOrNull(dir), () => listDirect(dir));
      return new Set(names);
    },
    read(path, what) {
      const st = statOrNull(path);
      if (st && !st.isFile) return DIRECT_FILES.read(path, what);
      return cached(`f:${path}`, st, () => DIRECT_FILES.read(path, what));
    },
  };
}
