/**
 * Timing marks for the benchmark's breakdown of one CNI call (`PODPLEX_TRACE=1`).
 *
 * Off, a mark costs one boolean test: no allocation, no string building (names are
 * literals or built only when on). On, `flushTrace()` writes one line to stderr,
 * `PODPLEX_TRACE {"marks":[[name, epochMs], ...]}`, right before the process exits;
 * stdout (the CNI result) is untouched.
 *
 * @module
 */

const on = Deno.env.get("PODPLEX_TRACE") === "1";
const marks: [string, number][] = [];

/** Whether tracing is on (to skip building a mark's name when it is not). */
export const tracing = on;

/** Records a named mark (epoch ms, sub-ms precision). */
export function mark(name: string): void {
  if (on) marks.push([name, performance.timeOrigin + performance.now()]);
}

/** Writes the marks as one stderr line; a no-op when tracing is off. */
export function flushTrace(): void {
  if (!on) return;
  mark("exit");
  const line = `PODPLEX_TRACE ${JSON.stringify({ marks })}\n`;
  Deno.stderr.writeSync(new TextEncoder().encode(line));
}

mark("entry");
