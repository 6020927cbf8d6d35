/**
 * The on-disk lease store, byte-compatible with the reference host-local
 * (plugins/ipam/host-local/backend/disk): `<dataDir>/<network>/` holds
 * - `lock`: an empty file held with flock(2) while leases change (Deno's
 *   `FsFile.lock(true)` is flock on Linux, so podplex and the reference exclude each other),
 * - one file per address, named by the address as Go prints it, holding
 *   `<containerID>\r\n<ifname>` (legacy files hold only the id), created O_EXCL mode 0600,
 * - `last_reserved_ip.<range set index>`: the last address handed out from that set.
 *
 * @module
 */
import { formatIp, type IP, tryParseIp } from "../../conf/ip.ts";
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

/** A {@linkcode Store} in `<dataDir>/<network>/`, sharing its format with the reference. */
export class DiskStore implements Store {
  /** The network's directory. */
  readonly dir: string;
  readonly #lockFile: Deno.FsFile;
  // flock is per open file: two async callers in this process would both "hold" it.
  readonly #mutex = new Mutex();
  #closed = false;

  private constructor(dir: string, lockFile: Deno.FsFile) {
    this.dir = dir;
    this.#lockFile = lockFile;
  }

  /**
   * Opens (creating as needed) the store of `network` under `dataDir`.
   *
   * @param network the network name (a valid CNI name, so safe as a path element)
   * @param dataDir the parent directory; empty means {@linkcode DEFAULT_DATA_DIR}
   * @throws {Deno.errors.PermissionDenied} and other I/O errors
   */
  static async open(network: string, dataDir = ""): Promise<DiskStore> {
    const dir = `${(dataDir || DEFAULT_DATA_DIR).replace(/\/+$/, "")}/${network}`;
    await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
    const lockFile = await Deno.open(`${dir}/lock`, { read: true, write: true, create: true });
    return new DiskStore(dir, lockFile);
  }

  async lock(): Promise<void> {
    await this.#mutex.acquire();
    try {
      await this.#lockFile.lock(true);
    } catch (err) {
      this.#mutex.release();
      throw err;
    }
  }

  async unlock(): Promise<void> {
    try {
      await this.#lockFile.unlock();
    } finally {
      this.#mutex.release();
    }
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      // Closing the descriptor also drops a flock still held.
      this.#lockFile.close();
    }
    return Promise.resolve();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async reserve(containerId: string, ifname: string, ip: IP, rangeId: string): Promise<boolean> {
    const name = formatIp(ip);
    const path = `${this.dir}/${name}`;
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists) return false;
      throw err;
    }
    try {
      await writeAll(file, `${containerId.trim()}${LINE_BREAK}${ifname}`);
    } catch (err) {
      file.close();
      await Deno.remove(path).catch(() => {});
      throw err;
    }
    file.close();
    await Deno.writeTextFile(`${this.dir}/${LAST_IP_PREFIX}${rangeId}`, name, { mode: 0o600 });
    return true;
  }

  async lastReservedIP(rangeId: string): Promise<IP | undefined> {
    try {
      // Go's net.ParseIP does not trim: a file with a newline gives no address.
      return tryParseIp(await Deno.readTextFile(`${this.dir}/${LAST_IP_PREFIX}${rangeId}`));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
  }

  async releaseByID(containerId: string, ifname: string): Promise<IP[]> {
    let out = await this.#releaseMatching(containerId, ifname, false);
    if (out.length === 0) out = await this.#releaseMatching(containerId, ifname, true);
    return out;
  }

  async #releaseMatching(containerId: string, ifname: string, legacy: boolean): Promise<IP[]> {
    const out: IP[] = [];
    for (const { name, lease } of await this.#scan()) {
      if (!leaseMatches(lease, containerId, ifname, legacy)) continue;
      // Best effort, as the reference: a file that cannot be removed is skipped.
      const ok = await Deno.remove(`${this.dir}/${name}`).then(() => true, () => false);
      if (ok) out.push(lease.ip);
    }
    return out;
  }

  async getByID(containerId: string, ifname: string): Promise<IP[]> {
    return (await this.list())
      .filter((l) =>
        leaseMatches(l, containerId, ifname, false) || leaseMatches(l, containerId, ifname, true)
      )
      .map((l) => l.ip);
  }

  /** Every lease: the files whose name is an address (`lock` and `last_reserved_ip.*` are not). */
  async list(): Promise<Lease[]> {
    return (await this.#scan()).map((e) => e.lease);
  }

  /** The lease files with their names (a name may be non-canonical if written by hand). */
  async #scan(): Promise<Array<{ name: string; lease: Lease }>> {
    const out: Array<{ name: string; lease: Lease }> = [];
    for await (const entry of Deno.readDir(this.dir)) {
      if (!entry.isFile) continue;
      const ip = tryParseIp(entry.name);
      if (!ip) continue;
      const content = await Deno.readTextFile(`${this.dir}/${entry.name}`).catch(() => undefined);
      if (content !== undefined) out.push({ name: entry.name, lease: parseLeaseFile(ip, content) });
    }
    return out;
  }

  async release(ip: IP): Promise<void> {
    await Deno.remove(this.#path(ip)).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }

  #path(ip: IP): string {
    return `${this.dir}/${formatIp(ip)}`;
  }
}

async function writeAll(file: Deno.FsFile, text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  let off = 0;
  while (off < bytes.length) off += await file.write(bytes.subarray(off));
}
