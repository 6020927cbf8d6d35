/**
 * Test helpers for controllers (test code: no product module may import it): a
 * {@linkcode FakeClock} that tests step, a {@linkcode testContext} with a captured log and a
 * registry to read metrics from.
 *
 * @module
 */
import type { Cancel, Clock, ControllerContext } from "./controller.ts";
import { ControllerMetrics } from "./metrics.ts";

interface Timer {
  at: number;
  every?: number;
  fn: () => void;
  id: number;
}

/** A clock that moves only when {@linkcode FakeClock.advance} says. */
export class FakeClock implements Clock {
  #now: number;
  #timers: Timer[] = [];
  #next = 0;

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): Date {
    return new Date(this.#now);
  }

  after(ms: number, fn: () => void): Cancel {
    return this.#add({ at: this.#now + ms, fn, id: this.#next++ });
  }

  every(ms: number, fn: () => void): Cancel {
    return this.#add({ at: this.#now + ms, every: Math.max(1, ms), fn, id: this.#next++ });
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const cancel = this.after(ms, resolve);
      signal?.addEventListener("abort", () => (cancel(), resolve()), { once: true });
    });
  }

  /** Moves time by `ms` without firing a timer (a suspended machine, a late timer). */
  jump(ms: number): void {
    this.#now += ms;
  }

  /** Timers waiting (one per pending `after`/`sleep`, one per live `every`). */
  get pending(): number {
    return this.#timers.length;
  }

  /**
   * Moves time by `ms`, firing each timer due on the way in time order, and lets the
   * promise jobs each one starts run before the next.
   */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    for (;;) {
      this.#timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const t = this.#timers[0];
      if (!t || t.at > end) break;
      this.#now = t.at;
      if (t.every) t.at += t.every;
      else this.#timers.shift();
      t.fn();
      await flush();
    }
    this.#now = end;
    await flush();
  }

  #add(t: Timer): Cancel {
    this.#timers.push(t);
    return () => void (this.#timers = this.#timers.filter((x) => x !== t));
  }
}

/** Lets pending promise jobs (and the jobs they queue) run. */
export async function flush(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
  await new Promise((r) => setTimeout(r, 0));
}

/** A context for a controller's unit test, with what it logged and its metrics at hand. */
export function testContext(clock = new FakeClock()): ControllerContext & {
  clock: FakeClock;
  lines: string[];
  metrics: ControllerMetrics;
} {
  const lines: string[] = [];
  return { clock, log: (l) => void lines.push(l), lines, metrics: new ControllerMetrics() };
}
