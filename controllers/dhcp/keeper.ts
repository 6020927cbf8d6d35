/**
 * The lease keeper: obtains DHCP leases in pods' netns, renews each at T1 (unicast to its
 * server), rebinds at T2 (broadcast), gives up and logs at expiry, and releases on DEL while
 * the interface still exists. Every lease is a file in its {@linkcode LeaseStore}, so a
 * restarted keeper resumes them ({@linkcode LeaseKeeper.resume}).
 *
 * It lives in `podplex serve` (see `keeper_server.ts`); calls on one lease are serialised,
 * calls on different leases overlap (each waits on its own socket, off the event loop).
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import { Netlink, NetNs } from "../../ffi/mod.ts";
import {
  acquire,
  type ClientParams,
  DhcpNakError,
  DhcpTimeoutError,
  type Lease,
  leaseTimes,
  rebind,
  release,
  renew,
} from "../../delegates/ipam/dhcp/client.ts";
import { openPodSocket, PodGoneError } from "../../delegates/ipam/dhcp/iface.ts";
import { fromHex, toHex } from "../../delegates/ipam/dhcp/_hex.ts";
import { macBytes } from "../../delegates/ipam/dhcp/message.ts";
import type { LeaseRequest } from "../../delegates/ipam/dhcp/protocol.ts";
import { type Cancel, type Clock, systemClock } from "../controller.ts";
import { type LeaseRecord, LeaseStore, recordLease } from "./lease_store.ts";

/** How the keeper talks DHCP and where it keeps its records. */
export interface KeeperOptions {
  /** The directory of lease records. */
  stateDir: string;
  /** How long to wait for each reply (the reference daemon's `-timeout`, 10 s). */
  timeoutMs: number;
  /** The longest pause between acquisition attempts (`-resendmax`, 62 s). */
  resendMaxMs: number;
  /** Give up acquiring after this long (`-resendtimeout`, 208 s). */
  resendTimeoutMs: number;
  /** One line per event (acquired, renewed, failed, expired, released). */
  log: (line: string) => void;
  /** Its time (renewal timers, expiry); the system clock by default. */
  clock?: Clock;
}

/** What ADD asks for. */
export type AcquireRequest = LeaseRequest;

interface Entry {
  record: LeaseRecord;
  lease: Lease;
  timer?: Cancel;
  /** Aborts a renewal in flight (DEL, shutdown). */
  abort: AbortController;
}

/** When a lease must be renewed, rebound and given up (ms since the epoch). */
function deadlines(l: Lease): { t1: number; t2: number; expiry: number } {
  const t = leaseTimes(l.options);
  return {
    t1: l.boundAt + t.t1 * 1000,
    t2: l.boundAt + t.t2 * 1000,
    expiry: l.boundAt + t.lease * 1000,
  };
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The keeper of every DHCP lease of one daemon. */
export class LeaseKeeper {
  readonly #opts: KeeperOptions;
  readonly #store: LeaseStore;
  readonly #entries = new Map<string, Entry>();
  readonly #locks = new Map<string, Promise<void>>();
  #closed = false;
  /** Aborts acquisitions in flight when the keeper closes. */
  readonly #shutdown = new AbortController();
  readonly #clock: Clock;

  /** @param opts see {@linkcode KeeperOptions} */
  constructor(opts: KeeperOptions) {
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#store = new LeaseStore(opts.stateDir);
  }

  /** The client ids of the leases held now. */
  get held(): string[] {
    return [...this.#entries.keys()];
  }

  /** Loads the records of an earlier run and schedules each lease; expired ones are dropped. */
  async resume(): Promise<number> {
    const bad = (file: string, e: unknown) =>
      this.#opts.log(`dhcp: cannot read lease record "${file}": ${message(e)}`);
    let n = 0;
    for (const record of await this.#store.list(bad)) {
      const e: Entry = { record, lease: recordLease(record), abort: new AbortController() };
      this.#entries.set(record.clientId, e);
      if (this.#now() >= deadlines(e.lease).expiry) {
        await this.#expire(e);
        continue;
      }
      this.#schedule(e);
      n++;
    }
    if (n) this.#opts.log(`dhcp: resumed ${n} lease(s) from "${this.#opts.stateDir}"`);
    return n;
  }

  /**
   * ADD: the lease of `req.clientId` (the one held, when it is current and in the same
   * netns), else a new one obtained on the pod's interface.
   *
   * @throws {CniError} 11 when no server answered or one refused, 3 when the netns or the
   *   interface does not exist
   */
  acquire(req: AcquireRequest): Promise<LeaseRecord> {
    return this.#locked(req.clientId, async () => {
      const held = this.#entries.get(req.clientId);
      if (held && held.record.netns === req.netns && this.#now() < deadlines(held.lease).expiry) {
        return held.record;
      }
      if (held) await this.#drop(held, true);
      const record = await this.#obtain(req);
      const e: Entry = { record, lease: recordLease(record), abort: new AbortController() };
      await this.#store.put(record);
      this.#entries.set(req.clientId, e);
      this.#schedule(e);
      this.#opts.log(
        `dhcp: ${req.clientId}: acquired ${record.address} from ${record.serverId}, ` +
          `expires ${new Date(deadlines(e.lease).expiry).toISOString()}`,
      );
      return record;
    });
  }

  async #obtain(req: AcquireRequest): Promise<LeaseRecord> {
    let sock;
    try {
      sock = openPodSocket(req.netns, req.ifname, true);
    } catch (e) {
      if (e instanceof PodGoneError) throw new CniError(Code.UnknownContainer, e.message);
      throw CniError.wrap(e, Code.KernelFailure, `Cannot open a DHCP socket on "${req.ifname}"`);
    }
    using _ = sock;
    const params = this.#params(req.options, sock.mac, req.clientId, this.#shutdown);
    let lease: Lease;
    try {
      lease = await acquire(sock.transport, params);
    } catch (e) {
      if (e instanceof DhcpTimeoutError || e instanceof DhcpNakError) {
        throw new CniError(
          Code.TryAgainLater,
          `Cannot obtain a DHCP lease on "${req.ifname}" in "${req.netns}": ${e.message} ` +
            `within ${this.#opts.resendTimeoutMs / 1000} s`,
        );
      }
      throw e;
    }
    return {
      clientId: req.clientId,
      containerId: req.containerId,
      netName: req.netName,
      ifname: req.ifname,
      netns: req.netns,
      options: req.options,
      ack: toHex(lease.ack),
      boundAt: lease.boundAt,
      serverId: lease.serverId,
      address: lease.address,
      mac: Array.from(sock.mac, (b) => b.toString(16).padStart(2, "0")).join(":"),
    };
  }

  #params(
    options: [number, string][],
    mac: Uint8Array,
    clientId: string,
    abort: AbortController,
  ): ClientParams {
    const id = new TextEncoder().encode(clientId);
    const cid = new Uint8Array(id.length + 1);
    cid.set(id, 1); // type 0: not a hardware address (the reference's withClientID)
    return {
      mac,
      clientId: cid,
      options: new Map(options.map(([code, hex]) => [code, fromHex(hex)])),
      timeoutMs: this.#opts.timeoutMs,
      resendMaxMs: this.#opts.resendMaxMs,
      resendTimeoutMs: this.#opts.resendTimeoutMs,
      signal: abort.signal,
    };
  }

  /**
   * DEL: sends DHCPRELEASE (when the interface is still there) and forgets the lease.
   *
   * @returns whether a lease was held
   */
  release(clientId: string): Promise<boolean> {
    this.#entries.get(clientId)?.abort.abort();
    return this.#locked(clientId, async () => {
      const e = this.#entries.get(clientId);
      if (!e) return false;
      await this.#drop(e, true);
      return true;
    });
  }

  /**
   * CHECK: the lease is held and current, and its address is on the interface.
   *
   * @throws {CniError} 3 when no lease is held, 101 when it expired or the address is missing
   */
  check(clientId: string): LeaseRecord {
    const e = this.#entries.get(clientId);
    if (!e) throw new CniError(Code.UnknownContainer, `No DHCP lease is held for "${clientId}"`);
    const { expiry } = deadlines(e.lease);
    if (this.#now() >= expiry) {
      throw new CniError(Code.KernelFailure, `The DHCP lease of "${clientId}" has expired`);
    }
    const want = `${e.record.address}/${e.lease.options.prefix}`;
    let have: string[];
    try {
      using ns = NetNs.open(e.record.netns);
      using nl = Netlink.open(ns);
      const link = nl.getLink(e.record.ifname);
      have = link ? nl.listAddrs(link.index, 4).map((a) => a.cidr) : [];
    } catch (err) {
      throw CniError.wrap(err, Code.KernelFailure, `Cannot read "${e.record.ifname}"`);
    }
    if (!have.includes(want)) {
      throw new CniError(
        Code.KernelFailure,
        `The DHCP address ${want} is not on "${e.record.ifname}" in "${e.record.netns}"`,
      );
    }
    return e.record;
  }

  /**
   * GC: releases the leases of network `netName` whose attachment is not in `valid`.
   *
   * @returns the client ids released
   */
  async gc(netName: string, valid: { containerId: string; ifname: string }[]): Promise<string[]> {
    const keep = new Set(valid.map((v) => `${v.containerId}\n${v.ifname}`));
    const stale = [...this.#entries.values()].filter((e) =>
      e.record.netName === netName && !keep.has(`${e.record.containerId}\n${e.record.ifname}`)
    );
    for (const e of stale) await this.release(e.record.clientId);
    return stale.map((e) => e.record.clientId);
  }

  /** Stops every timer and renewal; the records stay for the next run. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#shutdown.abort();
    for (const e of this.#entries.values()) {
      e.timer?.();
      e.abort.abort();
    }
    await Promise.allSettled([...this.#locks.values()]);
  }

  /**
   * Gives up the leases past their expiry now (a timer that came late, as after a suspend,
   * has not yet); the others keep their timers.
   *
   * @returns the client ids given up
   */
  async expireDue(): Promise<string[]> {
    const due = [...this.#entries.values()].filter((e) => this.#now() >= deadlines(e.lease).expiry);
    for (const e of due) {
      await this.#locked(e.record.clientId, async () => {
        if (!this.#closed && this.#entries.get(e.record.clientId) === e) await this.#expire(e);
      });
    }
    return due.map((e) => e.record.clientId);
  }

  #now(): number {
    return this.#clock.now().getTime();
  }

  #schedule(e: Entry): void {
    e.timer?.();
    if (this.#closed) return;
    const wait = Math.max(0, deadlines(e.lease).t1 - this.#now());
    e.timer = this.#clock.after(wait, () => this.#step(e));
  }

  /** One renewal (before T2) or rebinding (after) attempt, and the next step scheduled. */
  #step(e: Entry): void {
    e.timer = undefined;
    const id = e.record.clientId;
    this.#locked(id, async () => {
      if (this.#closed || this.#entries.get(id) !== e) return;
      const d = deadlines(e.lease);
      const now = this.#now();
      if (now >= d.expiry) return await this.#expire(e);
      const phase = now < d.t2 ? "renewal" : "rebinding";
      try {
        await this.#refresh(e, phase);
      } catch (err) {
        if (err instanceof PodGoneError) {
          this.#opts.log(`dhcp: ${id}: ${err.message}: no longer keeping ${e.record.address}`);
          return await this.#forget(e);
        }
        if (this.#closed || e.abort.signal.aborted) return;
        const boundary = phase === "renewal" ? d.t2 : d.expiry;
        const wait = Math.min(60_000, Math.max(1000, (boundary - now) / 2), d.expiry - now);
        this.#opts.log(`dhcp: ${id}: ${phase} failed: ${message(err)}; next try in ${wait} ms`);
        e.timer = this.#clock.after(wait, () => this.#step(e));
      }
    }).catch((err) => this.#opts.log(`dhcp: ${id}: ${message(err)}`));
  }

  async #refresh(e: Entry, phase: "renewal" | "rebinding"): Promise<void> {
    const r = e.record;
    using sock = openPodSocket(r.netns, r.ifname, false);
    const params = this.#params(r.options, macBytes(r.mac), r.clientId, e.abort);
    const lease = await (phase === "renewal" ? renew : rebind)(sock.transport, params, e.lease);
    e.lease = lease;
    e.record = {
      ...r,
      ack: toHex(lease.ack),
      boundAt: lease.boundAt,
      serverId: lease.serverId,
      address: lease.address,
    };
    await this.#store.put(e.record);
    this.#schedule(e);
    this.#opts.log(
      `dhcp: ${r.clientId}: ${phase} of ${lease.address} done, ` +
        `expires ${new Date(deadlines(lease).expiry).toISOString()}`,
    );
  }

  async #expire(e: Entry): Promise<void> {
    this.#opts.log(
      `dhcp: ${e.record.clientId}: the lease of ${e.record.address} expired without renewal: ` +
        `giving up`,
    );
    await this.#forget(e);
  }

  /** Stops keeping a lease, sending DHCPRELEASE first when `sendRelease`. */
  async #drop(e: Entry, sendRelease: boolean): Promise<void> {
    e.timer?.();
    e.abort.abort();
    const r = e.record;
    if (sendRelease) {
      try {
        using sock = openPodSocket(r.netns, r.ifname, false);
        const params = this.#params(r.options, macBytes(r.mac), r.clientId, e.abort);
        release(sock.transport, params, e.lease);
        this.#opts.log(`dhcp: ${r.clientId}: released ${r.address}`);
      } catch (err) {
        // Best effort, as DEL must be: the server frees the address at expiry.
        this.#opts.log(`dhcp: ${r.clientId}: cannot send DHCPRELEASE: ${message(err)}`);
      }
    }
    await this.#forget(e);
  }

  async #forget(e: Entry): Promise<void> {
    e.timer?.();
    if (this.#entries.get(e.record.clientId) === e) this.#entries.delete(e.record.clientId);
    await this.#store.remove(e.record.clientId);
  }

  /** Runs `fn` after every earlier call on the same lease has finished. */
  async #locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(key) ?? Promise.resolve();
    let done!: () => void;
    const mine = new Promise<void>((r) => done = r);
    const tail = prev.then(() => mine);
    this.#locks.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      done();
      if (this.#locks.get(key) === tail) this.#locks.delete(key);
    }
  }
}
