/**
 * When `podplex serve` lets a call start: a readers/writers gate in which DELs are the
 * readers. A DEL spends most of its time waiting for the kernel (the group delete's RCU
 * grace period, on an FFI worker thread), so DELs overlap; every other verb runs alone.
 *
 * @module
 */

interface Waiter {
  shared: boolean;
  key: string;
  start: () => void;
}

/** How a call may run next to others. */
export interface CallMode {
  /** Whether the call may run next to other shared calls (DEL); else it runs alone. */
  shared: boolean;
  /** Shared calls run together only when their keys are equal (the caller's cwd). */
  key?: string;
}

/**
 * Admits calls in arrival order (FIFO, so a waiting exclusive call is not starved by a
 * stream of shared ones): an exclusive call waits until nothing runs, and a shared call
 * joins the running ones when they are shared, have its key and number fewer than `max`.
 */
export class CallGate {
  readonly #max: number;
  #running = 0;
  #exclusive = false;
  #key = "";
  #waiting: Waiter[] = [];
  #idle: (() => void)[] = [];

  /** @param maxShared how many shared calls may run at once */
  constructor(maxShared = 8) {
    if (!Number.isInteger(maxShared) || maxShared < 1) {
      throw new RangeError(`Invalid "maxShared": ${maxShared} is not a positive integer`);
    }
    this.#max = maxShared;
  }

  /** How many calls run now. */
  get running(): number {
    return this.#running;
  }

  /** How many calls wait to be admitted. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Runs `fn` once the gate admits it; its result or error is passed through. */
  run<T>(mode: CallMode, fn: () => Promise<T>): Promise<T> {
    const admitted = new Promise<void>((start) => {
      this.#waiting.push({ shared: mode.shared, key: mode.key ?? "", start });
      this.#pump();
    });
    return admitted.then(fn).finally(() => this.#leave());
  }

  /** Resolves when nothing runs and nothing waits. */
  drain(): Promise<void> {
    if (this.#running === 0 && this.#waiting.length === 0) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  #admits(w: Waiter): boolean {
    if (this.#running === 0) return true;
    if (this.#exclusive || !w.shared) return false;
    return w.key === this.#key && this.#running < this.#max;
  }

  #pump(): void {
    while (this.#waiting.length && this.#admits(this.#waiting[0])) {
      const w = this.#waiting.shift()!;
      this.#running++;
      this.#exclusive = !w.shared;
      this.#key = w.key;
      w.start();
    }
  }

  #leave(): void {
    this.#running--;
    this.#pump();
    if (this.#running === 0 && this.#waiting.length === 0) {
      for (const r of this.#idle.splice(0)) r();
    }
  }
}
