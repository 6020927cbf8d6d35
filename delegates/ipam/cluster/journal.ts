/**
 * The node's DEL journal: a release that etcd could not take when the DEL came.
 *
 * Why a journal and not "fail DEL with 11": a DEL that fails is retried by kubelet, but
 * podman and others log it and forget the attachment, so the address would leak until a
 * reconcile. The DEL instead writes `{etcd, spaces, containerId, ifname}` to
 * `<dataDir>/<node>/journal/` (one small file, fsynced) and succeeds. Every later ADD, DEL
 * and GC of the cluster IPAM on the node replays the journal first, and so do
 * `podplex ipam reconcile` and the daemon's periodic reconcile. An ADD on the node never
 * proceeds past an entry it cannot replay (it fails with 11), so a journaled release always
 * runs before anything new is reserved from this node; the records it deletes are matched
 * by container id and interface, and container ids are not reused.
 *
 * @module
 */
import type { EtcdKv } from "../../../clients/etcd/client.ts";
import { SpaceKeys } from "./keys.ts";
import { ClusterStore } from "./store.ts";
import { writeFileAtomic } from "../../../conf/io.ts";

/** One journaled release. */
export interface JournalEntry {
  endpoints: string[];
  prefix: string;
  spaces: string[];
  containerId: string;
  ifname: string;
  /** When the DEL came (ms since the epoch). */
  t: number;
}

/** The journal directory of a node. */
export function journalDir(dataDir: string, node: string): string {
  return `${dataDir.replace(/\/+$/, "")}/${encodeURIComponent(node)}/journal`;
}

/** Writes an entry durably (temp file, fsync, rename). */
export async function journalAppend(dir: string, e: JournalEntry): Promise<string> {
  const path = `${dir}/${e.containerId}-${e.ifname}.json`;
  await writeFileAtomic(path, JSON.stringify(e), { dirMode: 0o700 });
  return path;
}

/** The entries (with their paths), oldest first; no journal is no entry. */
export async function journalEntries(dir: string): Promise<Array<[string, JournalEntry]>> {
  const out: Array<[string, JournalEntry]> = [];
  try {
    for await (const d of Deno.readDir(dir)) {
      if (!d.isFile || !d.name.endsWith(".json")) continue;
      const path = `${dir}/${d.name}`;
      try {
        out.push([path, JSON.parse(await Deno.readTextFile(path))]);
      } catch { /* a torn write (no rename happened) is not an entry */ }
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return out;
    throw err;
  }
  return out.sort((a, b) => a[1].t - b[1].t);
}

/** Removes a replayed entry. */
export async function journalDone(path: string): Promise<void> {
  await Deno.remove(path).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
}

/**
 * Replays the entries of `dir` that were written for etcd prefix `prefix` (and, when given,
 * for `endpoints`): releases each attachment's records in each space, then drops the entry.
 *
 * @returns how many entries were replayed
 * @throws the etcd error that stopped it (the entries not replayed stay)
 */
export async function replayJournalDir(
  etcd: EtcdKv,
  dir: string,
  prefix: string,
  node: string,
  endpoints?: string[],
): Promise<number> {
  let n = 0;
  for (const [path, e] of await journalEntries(dir)) {
    if (e.prefix !== prefix) continue;
    if (endpoints && e.endpoints.join(",") !== endpoints.join(",")) continue;
    const owner = { containerId: e.containerId, ifname: e.ifname, pod: "", node };
    for (const space of e.spaces) {
      const store = new ClusterStore(etcd, new SpaceKeys(prefix, space), owner, "");
      await store.releaseByID(e.containerId, e.ifname);
    }
    await journalDone(path);
    n++;
  }
  return n;
}
