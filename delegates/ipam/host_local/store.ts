/**
 * The lease store behind host-local: the seam between the allocator and where leases live
 * (a directory on disk now, etcd for the cluster IPAM later). Every method is async so a
 * remote backend fits; callers hold {@linkcode Store.lock} around read-modify-write steps.
 *
 * Also the in-memory store used by unit tests.
 *
 * @module
 */
import { formatIp, type IP, parseIp } from "../../../conf/ip.ts";

/** One lease: an address and who holds it. `ifname` is absent in legacy leases. */
export interface Lease {
  /** The leased address. */
  ip: IP;
  /** CNI_CONTAINERID of the holder. */
  containerId: string;
  /** CNI_IFNAME of the holder (absent in a legacy lease). */
  ifname?: string;
}

/** Where host-local keeps leases (same operations as the reference's backend.Store). */
export interface Store {
  /** Takes the store's exclusive lock (waits for it). */
  lock(): Promise<void>;
  /** Releases the lock taken by {@linkcode Store.lock}. */
  unlock(): Promise<void>;
  /** Frees resources (file handles, connections); the store is unusable afterwards. */
  close(): Promise<void>;
  /**
   * Records `ip` for `containerId`/`ifname` unless it is taken, and remembers it as the last
   * address reserved in range set `rangeId`.
   *
   * @returns false when the address is already taken
   */
  reserve(containerId: string, ifname: string, ip: IP, rangeId: string): Promise<boolean>;
  /** The last address reserved in range set `rangeId`, if known. */
  lastReservedIP(rangeId: string): Promise<IP | undefined>;
  /**
   * Releases every lease of `containerId`/`ifname`; when there is none, releases the legacy
   * leases that name only `containerId` (the reference's backward compatibility).
   *
   * @returns the released addresses
   */
  releaseByID(containerId: string, ifname: string): Promise<IP[]>;
  /** Addresses held by `containerId`/`ifname`, legacy leases of `containerId` included. */
  getByID(containerId: string, ifname: string): Promise<IP[]>;
  /** Every lease. */
  list(): Promise<Lease[]>;
  /** Releases one address (GC); a missing lease is not an error. */
  release(ip: IP): Promise<void>;
  /** STATUS: proves a lease could be written now (stores without a medium omit it). */
  probeWrite?(): Promise<void>;
  /**
   * GC: removes what killed writers left behind (temporary files); called with the lock
   * held. A store with nothing of the kind need not have it.
   *
   * @returns the names removed
   */
  removeOrphans?(): Promise<string[]>;
}

/**
 * Whether a lease matches `containerId`/`ifname`: exactly, or (`legacy`) a lease without
 * an ifname that names the container. Ids are compared trimmed, as the reference does.
 */
export function leaseMatches(
  l: Pick<Lease, "containerId" | "ifname">,
  containerId: string,
  ifname: string,
  legacy: boolean,
) {
  const id = containerId.trim();
  if (legacy) return l.ifname === undefined && l.containerId === id;
  return l.ifname === ifname && l.containerId === id;
}

/** A small in-process mutex (FIFO). */
export class Mutex {
  #tail: Promise<void> = Promise.resolve();
  #release: Array<() => void> = [];

  /** Waits until the mutex is free, then holds it. */
  async acquire(): Promise<void> {
    let release!: () => void;
    const next = new Promise<void>((r) => release = r);
    const prev = this.#tail;
    this.#tail = prev.then(() => next);
    await prev;
    this.#release.push(release);
  }

  /** Frees the mutex for the next waiter. */
  release(): void {
    this.#release.shift()?.();
  }
}

/** A {@linkcode Store} in memory, for unit tests and as the model other backends follow. */
export class MemoryStore implements Store {
  /** Leases by address text. */
  readonly leases = new Map<string, Lease>();
  /** Last reserved address text by range set id. */
  readonly lastReserved = new Map<string, string>();
  readonly #mutex = new Mutex();

  /** Seeds the store with leases, e.g. legacy ones, for tests. */
  constructor(leases: Lease[] = []) {
    for (const l of leases) this.leases.set(formatIp(l.ip), l);
  }

  async lock(): Promise<void> {
    await this.#mutex.acquire();
  }

  unlock(): Promise<void> {
    this.#mutex.release();
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  reserve(containerId: string, ifname: string, ip: IP, rangeId: string): Promise<boolean> {
    const key = formatIp(ip);
    if (this.leases.has(key)) return Promise.resolve(false);
    this.leases.set(key, { ip, containerId: containerId.trim(), ifname });
    this.lastReserved.set(rangeId, key);
    return Promise.resolve(true);
  }

  lastReservedIP(rangeId: string): Promise<IP | undefined> {
    const text = this.lastReserved.get(rangeId);
    return Promise.resolve(text === undefined ? undefined : parseIp(text));
  }

  releaseByID(containerId: string, ifname: string): Promise<IP[]> {
    let out = this.#releaseMatching(containerId, ifname, false);
    if (out.length === 0) out = this.#releaseMatching(containerId, ifname, true);
    return Promise.resolve(out);
  }

  #releaseMatching(containerId: string, ifname: string, legacy: boolean): IP[] {
    const out: IP[] = [];
    for (const [key, l] of this.leases) {
      if (!leaseMatches(l, containerId, ifname, legacy)) continue;
      this.leases.delete(key);
      out.push(l.ip);
    }
    return out;
  }

  getByID(containerId: string, ifname: string): Promise<IP[]> {
    const out = [...this.leases.values()].filter((l) =>
      leaseMatches(l, containerId, ifname, false) || leaseMatches(l, containerId, ifname, true)
    );
    return Promise.resolve(out.map((l) => l.ip));
  }

  list(): Promise<Lease[]> {
    return Promise.resolve([...this.leases.values()]);
  }

  release(ip: IP): Promise<void> {
    this.leases.delete(formatIp(ip));
    return Promise.resolve();
  }
}
