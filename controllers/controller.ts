/**
 * The one shape of the work `podplex serve` keeps running (controllers/README.md): a
 * {@linkcode Controller} is started by its folder's `start` function from an explicit
 * {@linkcode ControllerContext} (clock, logger, metrics registry, plus the watches and clients
 * that controller needs, as fields of its own context type), may be asked to
 * {@linkcode Controller.reconcile} at any time, and is stopped by
 * {@linkcode Controller.close}. A controller never reads flags, the environment or globals:
 * `cli/serve.ts` turns flags into contexts, in one table.
 *
 * @module
 */

/** A cancel function, as a timer of {@linkcode Clock} gives it. */
export type Cancel = () => void;

/** Time as a controller sees it; tests hand in a fake one (controllers/testing.ts). */
export interface Clock {
  /** The time now. */
  now(): Date;
  /** Calls `fn` once after `ms`; the result cancels it. */
  after(ms: number, fn: () => void): Cancel;
  /** Calls `fn` every `ms` until cancelled. */
  every(ms: number, fn: () => void): Cancel;
  /** Resolves after `ms`, or at once when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** One line per event worth telling (no trailing newline; the daemon prefixes and frames it). */
export type Logger = (line: string) => void;

/** One sample of a metric family, read at scrape time. */
export interface MetricSample {
  /** Label name → value (escaped when rendered). */
  labels?: Record<string, string>;
  /** The sample's value. */
  value: number;
}

/** A metric family a controller registers; `read` is called on every scrape. */
export interface MetricFamily {
  /** Prometheus name, `podplex_` prefixed, e.g. `podplex_overlay_resyncs_total`. */
  name: string;
  /** The `# HELP` text. */
  help: string;
  /** The `# TYPE`. */
  type: "counter" | "gauge";
  /** The samples now. */
  read(): MetricSample[];
}

/** Where a controller puts its metrics (the daemon's `/metrics` renders them). */
export interface MetricsRegistry {
  /** Registers a family; the same name twice is an error. */
  register(family: MetricFamily): void;
}

/** What every controller is started with; a controller's own context extends it. */
export interface ControllerContext {
  /** All its time: timers, sleeps, now. */
  clock: Clock;
  /** Its log lines. */
  log: Logger;
  /** Where its metrics go. */
  metrics: MetricsRegistry;
}

/** A running controller. */
export interface Controller {
  /** Its name in logs and in the daemon's table (e.g. `overlay`, `dhcp`, `ipam`). */
  readonly name: string;
  /**
   * Brings what it keeps in line with what it watches, once, now. Safe at any time: while
   * another reconcile runs (it waits for it or joins it), before the first event, after
   * `close()` (then it does nothing).
   */
  reconcile(): Promise<void>;
  /**
   * Stops: no new work, what runs finishes, timers, sockets and watches are released. What it
   * keeps outside the process (leases in etcd, lease records on disk) stays. Idempotent.
   */
  close(): Promise<void>;
}

/** A controller folder's entry point: its context in, a running controller out. */
export type StartController<C extends ControllerContext> = (ctx: C) => Promise<Controller>;

/** The real clock. */
export const systemClock: Clock = {
  now: () => new Date(),
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
  every(ms, fn) {
    const t = setInterval(fn, ms);
    return () => clearInterval(t);
  },
  sleep(ms, signal) {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const done = () => {
        clearTimeout(t);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const t = setTimeout(done, ms);
      signal?.addEventListener("abort", done, { once: true });
    });
  },
};
