/**
 * The on-disk lease store, byte-compatible with the reference host-local
 * (plugins/ipam/host-local/backend/disk): `<dataDir>/<network>/` holds
 * - `lock`: an empty file held with flock(2) while leases change (Deno's
 *   `FsFile.lock(true)` is flock on Linux, so podplex and the reference exclude each other),
 * - one file per address, named by the address as Go prints it, holding
 *   `<containerID>\r\n<ifname>` (legacy files hold only the id), created O_EXCL mode 0600,
 * - `last_reserved_ip.<range set index>`: the last address handed out from that set.
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

/** The reference's default `dataDir`. */
export const DEFAULT_DATA_DIR = "/var/lib/cni/networks";

const LAST_IP_PREFIX = "last_reserved_ip.";
const LINE_BREAK = "\r\n";

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
  #held = false;
  #closed = false;

  private constructor(dir: string, lockFile: Deno.FsFile) {
    this.dir = dir;
    this.#lockFile = lockFile;
    this.#mutex = dirMutex(dir);
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
      Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
      const lockFile = Deno.openSync(`${dir}/lock`, { read: true, write: true, create: true });
      return new DiskStore(dir, lockFile);
    });
  }

  async lock(): Promise<void> {
    await this.#mutex.acquire();
    try {
      this.#lockFile.lockSync(true);
      this.#held = true;
    } catch (err) {
      this.#mutex.release();
      throw err;
    }
  }

  unlock(): Promise<void> {
    try {
      this.#lockFile.unlockSync();
    } finally {
      this.#releaseMutex();
    }
    return Promise.resolve();
  }

  /** STATUS: writes and removes a probe file (its empty content matches no lease). */
  async probeWrite(): Promise<void> {
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
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { write: true, createNew: true, mode: 0o600 });
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists) return false;
      throw err;
    }
    try {
      writeAll(file, `${containerId.trim()}${LINE_BREAK}${ifname}`);
    } catch (err) {
      file.close();
      try {
        Deno.removeSync(path);
      } catch { /* the write error is the one to report */ }
      throw err;
    }
    file.close();
    writeInPlace(`${this.dir}/${LAST_IP_PREFIX}${rangeId}`, name);
    return true;
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
    for (const { name, lease } of this.#scan()) {
      if (!leaseMatches(lease, containerId, ifname, legacy)) continue;
      // Best effort, as the reference: a file that cannot be removed is skipped.
      try {
        Deno.removeSync(`${this.dir}/${name}`);
        out.push(lease.ip);
      } catch { /* skipped */ }
    }
    return out;
  }

  getByID(containerId: string, ifname: string): Promise<IP[]> {
    return settle(() =>
      this.#scan()
        .map((e) => e.lease)
        .filter((l) =>
          leaseMatches(l, containerId, ifname, false) || leaseMatches(l, containerId, ifname, true)
        )
        .map((l) => l.ip)
    );
  }

  /** Every lease: the files whose name is an address (`lock` and `last_reserved_ip.*` are not). */
  list(): Promise<Lease[]> {
    return settle(() => this.#scan().map((e) => e.lease));
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
        Deno.removeSync(this.#path(ip));
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

function writeAll(file: Deno.FsFile, text: string): number {
  const bytes = new TextEncoder().encode(text);
  let off = 0;
  while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
  return off;
}
