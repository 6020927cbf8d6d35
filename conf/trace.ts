/**
 * Timing marks of one CNI call, for the benchmark's breakdown (`PODPLEX_TRACE=1`).
 *
 * The entry decides whether a call is traced and hands its {@linkcode Trace} down with the
 * call; nothing here reads the environment or keeps state of its own. Off ({@linkcode
 * NO_TRACE}), a mark costs one call of an empty function (names built only when `on`). On,
 * `flush()` writes one line to stderr, `PODPLEX_TRACE {"marks":[[name, epochMs], ...]}`,
 * right before the process exits; stdout (the CNI result) is untouched.
 *
 * @module
 */

/** The marks of one call. */
export interface Trace {
  /** Whether marks are recorded (to skip building a mark's name when they are not). */
  readonly on: boolean;
  /** Records a named mark (epoch ms, sub-ms precision). */
  mark(name: string): void;
  /** Writes the marks as one line through `write`; a no-op when off. */
  flush(write: (line: string) => void): void;
}

/** A trace that records nothing. */
export const NO_TRACE: Trace = Object.freeze({
  on: false,
  mark() {},
  flush() {},
});

/**
 * A recording trace.
 *
 * @param startedAt `performance.now()` of the first mark (`entry`), when taken earlier
 * @example
 * ```ts
 * const trace = createTrace();
 * trace.mark("plan");
 * trace.flush((line) => console.error(line));
 * ```
 */
export function createTrace(startedAt: number = performance.now()): Trace {
  const at = (ms: number) => performance.timeOrigin + ms;
  const marks: [string, number][] = [["entry", at(startedAt)]];
  return {
    on: true,
    mark(name) {
      marks.push([name, at(performance.now())]);
    },
    flush(write) {
      marks.push(["exit", at(performance.now())]);
      write(`PODPLEX_TRACE ${JSON.stringify({ marks })}\n`);
    },
  };
}
