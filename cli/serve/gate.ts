/**
 * When `podplex serve` lets a call start, and when it gives up on one.
 *
 * Calls of different containers run at once; calls of one container run one after another
 * in arrival order (a runtime never overlaps them, and nothing shared by one pod's calls is
 * locked); GC runs alone (it walks every pod's state). What different pods share is locked
 * where it is shared: host-local's lease directory (an in-process mutex per directory, then
 * flock, so a per-call run on the host is excluded too), the cluster IPAM's node lock (the
 * same), iptables' POSTROUTING (edited by rule, never by line number, under xtables' own
 * lock) and nft (idempotent `add`s). Bridge creation needs no lock: netlink calls are
 * synchronous on the daemon's one JS thread, so ensuring the bridge and enslaving the veth
 * happen without another call's JS in between; against a per-call process the kernel's
 * "exists" answer is taken, as by the reference plugin.
 *
 * At most `maxInFlight` calls run and `maxQueued` wait; a call beyond that is answered 11
 * (try again later) at once, never queued, so a burst cannot grow the daemon without bound.
 * VERSION and STATUS need no slot. Every call has a deadline from its arrival
 * ({@linkcode CALL_DEADLINE_MS}): still queued then, it is answered 11 and never started;
 * running then, it is answered 11, and an ADD stops at its next attachment and rolls back. A
 * call whose client went away is never started either.
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import { CURRENT_VERSION } from "../../conf/version.ts";
import type { CallFrame, Reply } from "./protocol.ts";

/** How a call may run next to others. */
export interface CallMode {
  /** Runs without a slot (VERSION, STATUS). */
  free?: boolean;
  /** Runs alone (GC). */
  exclusive?: boolean;
  /** Calls with one key run one after another, in arrival order (the container id). */
  key?: string;
}

/** The limits of a {@linkcode CallScheduler}. */
export interface SchedulerLimits {
  /** Calls that may run at once. */
  maxInFlight: number;
  /** Calls that may wait; one more is refused. */
  maxQueued: number;
}

/** The defaults: enough to overlap every kernel wait of a burst on a small node. */
export const DEFAULT_LIMITS: Readonly<SchedulerLimits> = Object.freeze({
  maxInFlight: 16,
  maxQueued: 256,
});

interface Waiter {
  mode: CallMode;
  start: () => void;
  cancelled: boolean;
}

/** A call the scheduler refused or dropped before it started. */
export class NotStarted extends Error {}

/**
 * Admits calls in arrival order: a call starts when a slot is free, no call of its key runs
 * or waits before it, and nothing exclusive runs; an exclusive call waiting stops every
 * call behind it (so GC is not starved), and starts once nothing runs.
 */
export class CallScheduler {
  readonly #limits: SchedulerLimits;
  #running = 0;
  #exclusive = false;
  readonly #keys = new Set<string>();
  #waiting: Waiter[] = [];
  #idle: (() => void)[] = [];

  constructor(limits: SchedulerLimits = DEFAULT_LIMITS) {
    for (const [k, v] of Object.entries(limits)) {
      if (!Number.isInteger(v) || v < 1) {
        throw new RangeError(`Invalid "${k}": ${v} is not a positive integer`);
      }
    }
    this.#limits = { ...limits };
  }

  /** How many calls run now (free ones included). */
  get running(): number {
    return this.#running;
  }

  /** How many calls wait. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Runs `fn` once admitted; its result or error is passed through.
   *
   * @param signal when it aborts before `fn` started, `fn` never runs
   * @throws {NotStarted} when the queue is full, or `signal` aborted first
   */
  run<T>(mode: CallMode, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (mode.free) {
      this.#running++;
      return fn().finally(() => this.#leave(mode));
    }
    if (this.#waiting.length >= this.#limits.maxQueued) {
      return Promise.reject(new NotStarted(`${this.#waiting.length} calls are waiting already`));
    }
    return new Promise<T>((resolve, reject) => {
      const w: Waiter = {
        mode,
        cancelled: false,
        start: () => fn().then(resolve, reject).finally(() => this.#leave(mode)),
      };
      signal?.addEventListener("abort", () => {
        if (!this.#waiting.includes(w)) return;
        w.cancelled = true;
        this.#waiting = this.#waiting.filter((x) => x !== w);
        reject(new NotStarted(String(signal.reason ?? "cancelled")));
        this.#settle();
      }, { once: true });
      this.#waiting.push(w);
      this.#pump();
    });
  }

  /** Resolves when nothing runs and nothing waits. */
  drain(): Promise<void> {
    if (this.#running === 0 && this.#waiting.length === 0) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  #pump(): void {
    const blocked = new Set<string>();
    const keep: Waiter[] = [];
    let stop = false;
    for (const w of this.#waiting) {
      const key = w.mode.key;
      const free = this.#running < this.#limits.maxInFlight && !this.#exclusive;
      const admit = !stop && free &&
        (w.mode.exclusive
          ? this.#running === 0
          : key === undefined || (!this.#keys.has(key) && !blocked.has(key)));
      if (!admit) {
        keep.push(w);
        if (w.mode.exclusive) stop = true; // nothing overtakes a waiting exclusive call
        if (key !== undefined) blocked.add(key);
        continue;
      }
      this.#running++;
      if (w.mode.exclusive) this.#exclusive = true;
      if (key !== undefined) this.#keys.add(key);
      w.start();
    }
    this.#waiting = keep;
  }

  #leave(mode: CallMode): void {
    this.#running--;
    if (mode.exclusive) this.#exclusive = false;
    if (mode.key !== undefined) this.#keys.delete(mode.key);
    this.#pump();
    this.#settle();
  }

  #settle(): void {
    if (this.#running === 0 && this.#waiting.length === 0) {
      for (const r of this.#idle.splice(0)) r();
    }
  }
}

/** How a call runs next to others (see the module doc). */
export function callMode(req: CallFrame): CallMode {
  const verb = req.env.CNI_COMMAND;
  if (verb === "VERSION" || verb === "STATUS") return { free: true };
  if (verb === "GC") return { exclusive: true };
  return { key: req.env.CNI_CONTAINERID ?? "" };
}

/**
 * How long a call may take from its arrival, queueing included, before its client is told
 * 11 (try again later). Below the client's own 120 s, so the client hears it from the
 * daemon.
 */
export const CALL_DEADLINE_MS = 100_000;

/** An answer of code 11 saying why the call did not (or may not) complete. */
export function tryAgain(msg: string): Reply {
  const err = new CniError(Code.TryAgainLater, msg);
  return {
    status: 1,
    stdout: JSON.stringify(err.toJSON(CURRENT_VERSION), null, 4) + "\n",
    stderr: "",
  };
}

/** The answer of a call that missed its deadline. */
export function lateResponse(req: CallFrame, started: boolean, ms: number): Reply {
  const verb = req.env.CNI_COMMAND;
  return tryAgain(
    started
      ? `podplex serve: ${verb} did not finish within ${ms} ms; it may still complete`
      : `podplex serve: ${verb} waited ${ms} ms behind other calls and was not started`,
  );
}

/** Options of {@linkcode admitAndRun}. */
export interface AdmitOptions {
  deadlineMs?: number;
  /** Aborts when the client went away: a call not started yet never starts. */
  clientGone?: AbortSignal;
}

/**
 * Runs a call through the scheduler with its deadline. `run` gets a signal that aborts at
 * the deadline or when the client goes (an ADD stops at its next attachment then).
 */
export async function admitAndRun(
  req: CallFrame,
  scheduler: CallScheduler,
  run: (signal: AbortSignal) => Promise<Reply>,
  opts: AdmitOptions = {},
): Promise<Reply> {
  const deadlineMs = opts.deadlineMs ?? CALL_DEADLINE_MS;
  const cancel = new AbortController();
  const abort = (why: string) => cancel.abort(why);
  opts.clientGone?.addEventListener("abort", () => abort("the client went away"), { once: true });
  let started = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<Reply>((resolve) => {
    timer = setTimeout(() => {
      resolve(lateResponse(req, started, deadlineMs));
      abort(`the deadline of ${deadlineMs} ms passed`);
    }, deadlineMs);
  });
  const work = scheduler.run(callMode(req), () => {
    started = true;
    return run(cancel.signal);
  }, cancel.signal).catch((e) => {
    if (!(e instanceof NotStarted)) throw e;
    const verb = req.env.CNI_COMMAND;
    return tryAgain(`podplex serve: ${verb} was not started: ${e.message}`);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}
