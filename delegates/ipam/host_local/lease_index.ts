/**
 * An index of a host-local network directory's leases, so that finding an attachment's
 * leases (every ADD's duplicate check, every DEL's release) does not read every lease file.
 * The reference reads them all (filepath.Walk) on each call: with 1,000 pods on a node that
 * is 1,000 file reads per network per call, the cost that grew with the pod count.
 *
 * The index is `.podplex-index` in the network directory (not an address, so the reference
 * and every reader of lease files pass it by): the leases by file name, stamped with the
 * directory's inode, size and mtime as they were when the index was written. Leases are
 * created and removed, never rewritten, and creating or removing a file changes its
 * directory's mtime; so an index whose stamp is the directory's current one holds exactly
 * the leases there are. Anything else (no index, another stamp, an unreadable file) means a
 * full scan, after which the index is written again. Written in place and read only under
 * the store's lock, as `last_reserved_ip`, so it never moves the directory's mtime itself
 * after its first creation.
 *
 * What a stamp cannot see: a writer that changes the directory within the same clock tick
 * (the kernel's coarse clock, <= 4 ms) after podplex's last write, and then crashes before
 * its own index update, or is not podplex at all. podplex marks the index stale before it
 * changes the directory, so a podplex killed in the middle leaves a stale index, not a wrong
 * one. What a foreign writer (the reference host-local) adds in that window is an attachment
 * podplex did not make, which no podplex lookup by id asks for; and a lease the index names
 * is read again before it is released, so a stale entry is never acted on.
 *
 * @module
 */
import { writeAllSync } from "../../../conf/io.ts";
import type { Lease } from "./store.ts";

/** Who holds a lease file (its address is its name, parsed only when a lookup finds it). */
export type Holder = Pick<Lease, "containerId" | "ifname">;

/** The index file's name in a network directory. */
export const LEASE_INDEX = ".podplex-index";
const STALE = "stale\n";
const VERSION = 1;

/** What identifies the directory's entries as they are. */
function stamp(dir: string): string {
  const st = Deno.statSync(dir);
  return `${st.ino}:${st.size}:${st.mtime?.getTime()}`;
}

interface IndexFile {
  v: number;
  stamp: string;
  /** [file name, container id, ifname (null: a legacy lease)] */
  leases: [string, string, string | null][];
}

/** One lock session's view of a directory's leases, kept in step with the index file. */
export class LeaseIndex {
  readonly #dir: string;
  readonly #path: string;
  #view?: Map<string, Holder>;
  #marked = false;

  constructor(dir: string) {
    this.#dir = dir;
    this.#path = `${dir}/${LEASE_INDEX}`;
  }

  /** A new lock session: what was seen before it may have changed. */
  reset(): void {
    this.#view = undefined;
    this.#marked = false;
  }

  /**
   * The leases by file name: from the index when its stamp is the directory's, else from
   * `scan` (and the index written).
   */
  view(scan: () => Array<{ name: string; lease: Lease }>): Map<string, Holder> {
    if (this.#view) return this.#view;
    const read = this.#read();
    if (read) return this.#view = read;
    return this.rebuild(scan);
  }

  /** The leases from a full `scan`, the index written from it. */
  rebuild(scan: () => Array<{ name: string; lease: Lease }>): Map<string, Holder> {
    this.#view = new Map(scan().map((e) => [e.name, e.lease]));
    this.#write();
    return this.#view;
  }

  /** Before the directory's entries change: the index stops vouching for them. */
  willChange(): void {
    if (this.#marked) return;
    this.#marked = true;
    try {
      this.#writeText(STALE);
    } catch {
      // Cannot write it: then it must not be there to vouch for what follows.
      try {
        Deno.removeSync(this.#path);
      } catch { /* none, or nothing can be done: the stamp still changes with the entries */ }
    }
  }

  /** A lease file created under the lock. */
  added(name: string, holder: Holder): void {
    this.#view?.set(name, holder);
  }

  /** A lease file removed under the lock. */
  removed(name: string): void {
    this.#view?.delete(name);
  }

  /** The end of a lock session that changed the directory: the index written again. */
  commit(): void {
    if (this.#marked && this.#view) this.#write();
    this.#marked = false;
  }

  #read(): Map<string, Holder> | undefined {
    let parsed: IndexFile;
    try {
      parsed = JSON.parse(Deno.readTextFileSync(this.#path));
      if (parsed?.v !== VERSION || parsed.stamp !== stamp(this.#dir)) return undefined;
    } catch {
      return undefined; // missing, stale, torn by a crash: scan
    }
    const out = new Map<string, Holder>();
    for (const [name, containerId, ifname] of parsed.leases) {
      out.set(name, ifname === null ? { containerId } : { containerId, ifname });
    }
    return out;
  }

  #write(): void {
    const leases = [...this.#view!].map(([name, l]): IndexFile["leases"][number] => [
      name,
      l.containerId,
      l.ifname ?? null,
    ]);
    try {
      // Created first, so that its own creation is in the stamp written into it.
      Deno.openSync(this.#path, { write: true, create: true, mode: 0o600 }).close();
      const file: IndexFile = { v: VERSION, stamp: stamp(this.#dir), leases };
      this.#writeText(JSON.stringify(file));
      this.#marked = false;
    } catch {
      // A read-only or full disk: no index, every call scans (as the reference always does).
    }
  }

  /** Rewrites the file from offset 0 and cuts it to length (no O_TRUNC: see writeInPlace). */
  #writeText(text: string): void {
    using file = Deno.openSync(this.#path, { write: true, create: true, mode: 0o600 });
    file.truncateSync(writeAllSync(file, text));
  }
}
