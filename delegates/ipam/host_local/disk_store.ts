/**
 * The on-disk lease store, byte-compatible with the reference host-local
 * (plugins/ipam/host-local/backend/disk): `<dataDir>/<network>/` holds
 * - `lock`: an empty file held with flock(2) while leases change (Deno's
 *   `FsFile.lock(true)` is flock on Linux, so podplex and the reference exclude each other),
 * - one file per address, named by the address as Go prints it, holding
 *   `<containerID>\r\n<ifname>` (legacy files hold only the id), mode 0600,
 * - `last_reserved_ip.<range set index>`: the last address handed out from that set.
 *
 * Crash safety: an address file is written under a temporary name and then hard-linked to
 * its address (link(2) fails when the name exists, as O_EXCL does), so a process killed at
 * any point never leaves an empty or ownerless lease; the reference, which writes the
 * address file in place, can. The temporary name (`.podplex-lease.tmp`, not an address, so
 * the reference ignores it) is only written under the lock, so one left by a killed process
 * is removed by the next holder of the lock, and by GC.
 *
 * Lookups by attachment (ADD's duplicate check, DEL's release) go through an index of the
 * directory's leases (lease_index.ts) instead of reading every lease file; what they find is
 * read again from its file before it counts. GC and `list()` always read every file.
 *
 * Modes: the network directory is 0700 and the lock file 0600 whatever the umask (also when
 * an older version made them wider): a lock file anyone can open is a lock anyone can hold.
 *
 * The methods are async (the {@linkcode Store} seam fits a remote backend) but the file calls
 * inside are synchronous: an async Deno file call is a round trip through the runtime's
 * thread pool, and a lease took ~10 of them in a process that does nothing else meanwhile.
 * A blocked flock(2) therefore blocks the thread, as in the reference; a per-directory mutex
 * keeps two stores of one process from waiting on each other's flock forever.
 *
 * @module
 */
import { formatIp, type IP, tryParseIp } from "../../../conf/ip.ts";
import { type Lease, leaseMatches, Mutex, type Store } from "./store.ts";
import { writeAllSync as writeAll } from "../../../conf/io.ts";
import { LeaseIndex } from "./lease_index.ts";

/** The reference's default `dataDir`. */
export const DEFAULT_DATA_DIR = "/var/lib/cni/networks";

const LAST_IP_PREFIX = "last_reserved_ip.";
const LINE_BREAK = "\r\n";
/** Where an address file is written before it is linked to its name (under the lock). */
export const LEASE_TEMP = ".podplex-lease.tmp";
/** STATUS probe files (`probeWrite`); GC removes those older than this (ms). */
const STALE_PROBE_MS = 60_000;
const DIR_MODE = 0o700;
const LOCK_MODE = 0o600;

/** Parses an address file's content into a lease (legacy content is the id alone). */
export function parseLeaseFile(ip: IP, content: string): Lease {
  // The reference compares strings.TrimSpace(content).
  const text = content.trim();
  const at = text.indexOf(LINE_BREAK);
  if (at < 0) return { ip, containerId: text };
  return { ip, containerId: text.slice(0, at), ifname: text.slice(at + LINE_BREAK.length) };
}

// flock is per open file description: two stores of one directory in this process must not
// both hold it (one fd each would deadlock a synchronous flock; one shared fd would let both
// in). One mutex per directory serialises them before the flock is asked for.
const dirMutexes = new Map<string, Mutex>();

function dirMutex(dir: string): Mutex {
  let m = dirMutexes.get(dir);
  if (!m) dirMutexes.set(dir, m = new Mutex());
  return m;
}

/** A {@linkcode Store} in `<dataDir>/<network>/`, sharing its format with the reference. */
export class DiskStore implements Store {
  /** The network's directory. */
  readonly dir: string;
  readonly #lockFile: Deno.FsFile;
  readonly #mutex: Mutex;
  readonly #index: LeaseIndex;
  #held = false;
  #closed = false;

  private constructor(dir: string, lockFile: Deno.FsFile) {
    this.dir = dir;
    this.#lockFile = lockFile;
    this.#mutex = dirMutex(dir);
    this.#index = new LeaseIndex(dir);
  }

  /**
   * Opens (creating as needed) the store of `network` under `dataDir`.
   *
   * @param network the network name (a valid CNI name, so safe as a path element)
   * @param dataDir the parent directory; empty means {@linkcode DEFAULT_DATA_DIR}
   * @throws {Deno.errors.PermissionDenied} and other I/O errors
   */
  static open(network: string, dataDir = ""): Promise<DiskStore> {
    const dir = `${(dataDir || DEFAULT_DATA_DIR).replace(/\/+$/, "")}/${network}`;
    return settle(() => {
      Deno.mkdirSync(dir, { recursive: true, mode: DIR_MODE });
      enforceMode(dir, Deno.statSync(dir), DIR_MODE);
      const lock = `${dir}/lock`;
      const lockFile = Deno.openSync(lock, {
        read: true,
        write: true,
        create: true,
        mode: LOCK_MODE,
      });
      try {
        enforceMode(lock, lockFile.statSync(), LOCK_MODE);
      } catch (err) {
        lockFile.close();
        throw err;
      }
      return new DiskStore(dir, lockFile);
    });
  }

  async lock(): Promise<void> {
    await this.#mutex.acquire();
    try {
      this.#lockFile.lockSync(true);
      this.#held = true;
      this.#index.begin();
    } catch (err) {
      this.#mutex.release();
      throw err;
    }
    // Nobody writes the temporary lease while we hold the lock: one that exists is a killed
    // writer's. One unlink, usually answered ENOENT.
    removeIfExists(`${this.dir}/${LEASE_TEMP}`);
  }

  unlock(): Promise<void> {
    try {
      if (this.#held) this.#index.end();
      this.#lockFile.unlockSync();
    } finally {
      this.#releaseMutex();
    }
    return Promise.resolve();
  }

  /** STATUS: writes and removes a probe file (its empty content matches no lease). */
  async probeWrite(): Promise<void> {
    this.#index.willChange();
    await Deno.remove(await Deno.makeTempFile({ dir: this.dir, prefix: ".status-" }));
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      // Closing the descriptor also drops a flock still held; the mutex goes with it.
      this.#lockFile.close();
      this.#releaseMutex();
    }
    return Promise.resolve();
  }

  #releaseMutex(): void {
    if (!this.#held) return;
    this.#held = false;
    this.#mutex.release();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  reserve(containerId: string, ifname: string, ip: IP, rangeId: string): Promise<boolean> {
    return settle(() => this.#reserve(containerId, ifname, ip, rangeId));
  }

  #reserve(containerId: string, ifname: string, ip: IP, rangeId: string): boolean {
    const name = formatIp(ip);
    const path = `${this.dir}/${name}`;
    const content = `${containerId.trim()}${LINE_BREAK}${ifname}`;
    this.#index.willChange();
    if (!linkNewFile(`${this.dir}/${LEASE_TEMP}`, path, content)) return false;
    this.#index.added(name, parseLeaseFile(ip, content));
    writeInPlace(`${this.dir}/${LAST_IP_PREFIX}${rangeId}`, name);
    return true;
  }

  /**
   * Removes what killed processes left: the temporary lease (under the lock) and STATUS
   * probe files older than a minute. Called by GC with the lock held.
   *
   * @returns the names removed
   */
  removeOrphans(): Promise<string[]> {
    return settle(() => {
      const out: string[] = [];
      const now = Date.now();
      for (const e of Deno.readDirSync(this.dir)) {
        const path = `${this.dir}/${e.name}`;
        let orphan = e.name === LEASE_TEMP;
        if (!orphan && e.name.startsWith(".status-")) {
          const mtime = Deno.lstatSync(path).mtime?.getTime() ?? 0;
          orphan = now - mtime > STALE_PROBE_MS;
        }
        if (orphan) this.#index.willChange();
        if (orphan && removeIfExists(path)) out.push(e.name);
      }
      return out;
    });
  }

  lastReservedIP(rangeId: string): Promise<IP | undefined> {
    return settle(() => {
      try {
        // Go's net.ParseIP does not trim: a file with a newline gives no address.
        return tryParseIp(Deno.readTextFileSync(`${this.dir}/${LAST_IP_PREFIX}${rangeId}`));
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) return undefined;
        throw err;
      }
    });
  }

  releaseByID(containerId: string, ifname: string): Promise<IP[]> {
    return settle(() => {
      let out = this.#releaseMatching(containerId, ifname, false);
      if (out.length === 0) out = this.#releaseMatching(containerId, ifname, true);
      return out;
    });
  }

  #releaseMatching(containerId: string, ifname: string, legacy: boolean): IP[] {
    const out: IP[] = [];
    for (const { name, lease } of this.#matching(containerId, ifname, legacy)) {
      // Best effort, as the reference: a file that cannot be removed is skipped.
      try {
        this.#index.willChange();
        Deno.removeSync(`${this.dir}/${name}`);
        this.#index.removed(name);
        out.push(lease.ip);
      } catch { /* skipped */ }
    }
    return out;
  }

  getByID(containerId: string, ifname: string): Promise<IP[]> {
    return settle(() =>
      [
        ...this.#matching(containerId, ifname, false),
        ...this.#matching(containerId, ifname, true),
      ].map((e) => e.lease.ip)
    );
  }

  /** Every lease: the files whose name is an address (`lock` and `last_reserved_ip.*` are not). */
  list(): Promise<Lease[]> {
    return settle(() => {
      const all = this.#scan();
      this.#index.rebuild(all);
      return all.map((e) => e.lease);
    });
  }

  /**
   * The leases of an attachment (`legacy`: the id-only leases of the container), found in
   * the index (under the lock) and each read again from its file; without the lock, or when
   * one is not what the index says, from every file (and the index rebuilt from them).
   */
  #matching(containerId: string, ifname: string, legacy: boolean) {
    const scanned = () => {
      const all = this.#scan();
      this.#index.rebuild(all);
      return all.filter((e) => leaseMatches(e.lease, containerId, ifname, legacy));
    };
    const names = this.#index.find(() => this.#scan(), containerId, ifname, legacy);
    if (names === undefined) return scanned();
    const hits = names.map((name) => ({ name, lease: this.#readLease(name) }));
    if (hits.every((h) => h.lease && leaseMatches(h.lease, containerId, ifname, legacy))) {
      return hits as Array<{ name: string; lease: Lease }>;
    }
    return scanned();
  }

  /** One lease file, or undefined when it is gone or unreadable. */
  #readLease(name: string): Lease | undefined {
    const ip = tryParseIp(name);
    if (!ip) return undefined;
    try {
      return parseLeaseFile(ip, Deno.readTextFileSync(`${this.dir}/${name}`));
    } catch {
      return undefined;
    }
  }

  /** The lease files with their names (a name may be non-canonical if written by hand). */
  #scan(): Array<{ name: string; lease: Lease }> {
    const out: Array<{ name: string; lease: Lease }> = [];
    for (const entry of Deno.readDirSync(this.dir)) {
      if (!entry.isFile) continue;
      const ip = tryParseIp(entry.name);
      if (!ip) continue;
      let content: string;
      try {
        content = Deno.readTextFileSync(`${this.dir}/${entry.name}`);
      } catch {
        continue; // removed meanwhile, or unreadable: not a lease we can match
      }
      out.push({ name: entry.name, lease: parseLeaseFile(ip, content) });
    }
    return out;
  }

  release(ip: IP): Promise<void> {
    return settle(() => {
      try {
        this.#index.willChange();
        Deno.removeSync(this.#path(ip));
        this.#index.removed(formatIp(ip));
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    });
  }

  #path(ip: IP): string {
    return `${this.dir}/${formatIp(ip)}`;
  }
}

/** Runs a synchronous step as a Promise: its throw becomes a rejection, as the async API had. */
function settle<T>(step: () => T): Promise<T> {
  try {
    return Promise.resolve(step());
  } catch (err) {
    return Promise.reject(err);
  }
}

/** Sets `path`'s permission bits to exactly `mode` unless they are already (one chmod). */
function enforceMode(path: string, st: Deno.FileInfo, mode: number): void {
  if (st.mode !== null && (st.mode & 0o7777) !== mode) Deno.chmodSync(path, mode);
}

/** Removes a file; false when it was not there. */
function removeIfExists(path: string): boolean {
  try {
    Deno.removeSync(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/**
 * Creates `path` holding `content` so that it appears whole or not at all: written to
 * `tmp`, then hard-linked to `path` (fails when `path` exists, as O_EXCL), then `tmp` goes.
 * On a filesystem without hard links, falls back to an O_EXCL create written in place.
 *
 * @returns false when `path` already exists
 */
function linkNewFile(tmp: string, path: string, content: string): boolean {
  {
    using file = Deno.openSync(tmp, { write: true, create: true, truncate: true, mode: 0o600 });
    writeAll(file, content);
  }
  try {
    Deno.linkSync(tmp, path);
  } catch (err) {
    removeIfExists(tmp);
    if (err instanceof Deno.errors.AlreadyExists) return false;
    if (err instanceof Deno.errors.NotSupported || err instanceof Deno.errors.PermissionDenied) {
      return createInPlace(path, content);
    }
    throw err;
  }
  removeIfExists(tmp);
  return true;
}

/** The reference's way (O_EXCL create, then write), for filesystems without link(2). */
function createInPlace(path: string, content: string): boolean {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { write: true, createNew: true, mode: 0o600 });
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) return false;
    throw err;
  }
  try {
    writeAll(file, content);
  } catch (err) {
    file.close();
    removeIfExists(path);
    throw err;
  }
  file.close();
  return true;
}

/**
 * Replaces a small file's content without O_TRUNC: write from offset 0, then cut to length.
 * ext4 (auto_da_alloc) starts writeback when a file truncated to zero is closed, which made
 * each `last_reserved_ip` update cost 0.2-0.6 ms; rewriting in place costs ~0.03 ms. The file
 * is only read under the store's lock, so no reader sees the mix of old and new bytes.
 */
function writeInPlace(path: string, text: string): void {
  using file = Deno.openSync(path, { write: true, create: true, mode: 0o600 });
  const length = writeAll(file, text);
  file.truncateSync(length);
}
