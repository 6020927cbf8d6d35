/**
 * An index of a host-local network directory's leases, so that finding an attachment's
 * leases (every ADD's duplicate check, every DEL's release) does not read every lease file.
 * The reference reads them all (filepath.Walk) on each call: with 1,000 pods on a node that
 * is 1,000 file reads per network per call, the cost that grew with the pod count.
 *
 * The index is `.podplex-index` in the network directory (not an address, so the reference
 * and every reader of lease files pass it by): a stamp line with the directory's inode, size
 * and mtime as they were when the index was written, then a line per lease file,
 * `<name>\t<container id>\t<ifname>` (an empty ifname: a legacy lease). A lookup searches
 * that text for the attachment's fields (no parse of the other lines: at 1,000 leases a
 * JSON index cost ~4 ms per network per call to parse and write). Leases are
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

/** The index file's name in a network directory. */
export const LEASE_INDEX = ".podplex-index";
const STALE = "stale\n";
const MAGIC = "podplex-lease-index 1";

/** What identifies the directory's entries as they are. */
function stamp(dir: string): string {
  const st = Deno.statSync(dir);
  return `${MAGIC} ${st.ino}:${st.size}:${st.mtime?.getTime()}`;
}

/** A field the line format can carry (no tab, no line break). */
const plain = (s: string) => !/[\t\r\n]/.test(s);

function line(name: string, l: Pick<Lease, "containerId" | "ifname">): string {
  return `${name}\t${l.containerId}\t${l.ifname ?? ""}\n`;
}

/** One lock session's view of a directory's leases, kept in step with the index file. */
export class LeaseIndex {
  readonly #dir: string;
  readonly #path: string;
  /** "\n" + one line per lease (so every line follows a "\n"), or undefined: not loaded. */
  #body?: string;
  /** A holder the line format cannot carry: this directory is scanned, never indexed. */
  #unindexable = false;
  #marked = false;
  /** Between the store's lock and unlock: outside them the index is neither read nor written. */
  #active = false;

  constructor(dir: string) {
    this.#dir = dir;
    this.#path = `${dir}/${LEASE_INDEX}`;
  }

  /** The store took its lock: a new session, what was seen before it may have changed. */
  begin(): void {
    this.#body = undefined;
    this.#unindexable = false;
    this.#marked = false;
    this.#active = true;
  }

  /**
   * The names of the lease files held by the attachment (`legacy`: the id-only leases of
   * the container), from the index when its stamp is the directory's, else from `scan`
   * (and the index written); undefined when the directory cannot be indexed.
   */
  find(
    scan: () => Array<{ name: string; lease: Lease }>,
    containerId: string,
    ifname: string,
    legacy: boolean,
  ): string[] | undefined {
    if (!this.#active) return undefined;
    if (this.#body === undefined && !this.#unindexable) {
      this.#body = this.#read();
      if (this.#body === undefined) this.rebuild(scan());
    }
    if (this.#body === undefined) return undefined;
    const id = containerId.trim();
    if (!plain(id) || !plain(ifname)) return undefined;
    const needle = `\t${id}\t${legacy ? "" : ifname}\n`;
    const out: string[] = [];
    for (let at = this.#body.indexOf(needle); at >= 0; at = this.#body.indexOf(needle, at + 1)) {
      out.push(this.#body.slice(this.#body.lastIndexOf("\n", at - 1) + 1, at));
    }
    return out;
  }

  /** The index written from a full scan's `leases`. */
  rebuild(leases: Array<{ name: string; lease: Lease }>): void {
    if (!this.#active) return;
    this.#unindexable = leases.some(({ name, lease }) =>
      !plain(name) || !plain(lease.containerId) || !plain(lease.ifname ?? "")
    );
    this.#body = this.#unindexable
      ? undefined
      : "\n" + leases.map((e) => line(e.name, e.lease)).join("");
    if (this.#body !== undefined) this.#write();
  }

  /** Before the directory's entries change: the index stops vouching for them. */
  willChange(): void {
    if (!this.#active || this.#marked) return;
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
  added(name: string, holder: Pick<Lease, "containerId" | "ifname">): void {
    if (this.#body === undefined) return;
    if (!plain(holder.containerId) || !plain(holder.ifname ?? "")) {
      this.#body = undefined;
      this.#unindexable = true;
      return;
    }
    this.#body += line(name, holder);
  }

  /** A lease file removed under the lock. */
  removed(name: string): void {
    if (this.#body === undefined) return;
    const at = this.#body.indexOf(`\n${name}\t`);
    if (at < 0) return;
    const end = this.#body.indexOf("\n", at + 1);
    this.#body = this.#body.slice(0, at) + this.#body.slice(end);
  }

  /** The store lets go of its lock: the index written again if the session changed the directory. */
  end(): void {
    if (this.#active && this.#marked && this.#body !== undefined) this.#write();
    this.#marked = false;
    this.#active = false;
    this.#body = undefined;
  }

  #read(): string | undefined {
    try {
      const text = Deno.readTextFileSync(this.#path);
      const nl = text.indexOf("\n");
      if (nl < 0 || text.slice(0, nl) !== stamp(this.#dir)) return undefined;
      return text.slice(nl);
    } catch {
      return undefined; // missing, stale, torn by a crash: scan
    }
  }

  #write(): void {
    try {
      // Created first, so that its own creation is in the stamp written into it.
      Deno.openSync(this.#path, { write: true, create: true, mode: 0o600 }).close();
      this.#writeText(stamp(this.#dir) + this.#body);
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
