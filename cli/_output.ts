/**
 * Output of the standalone subcommands: whole writes to stdout and stderr, JSON, text tables.
 *
 * @module
 */

import { writeAllSync as writeAll } from "../conf/io.ts";

/** Writes to stdout. */
export const out = (s: string): void => void writeAll(Deno.stdout, s);
/** Writes to stderr. */
export const err = (s: string): void => void writeAll(Deno.stderr, s);

/** Prints a value as indented JSON on stdout. */
export function printJson(value: unknown): void {
  out(JSON.stringify(value, null, 2) + "\n");
}

/**
 * Renders rows as a left-aligned text table with a header line.
 *
 * @example
 * ```ts
 * table(["POD", "IP"], [["web", "10.0.0.2"]]); // "POD  IP\nweb  10.0.0.2\n"
 * ```
 */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n") + "\n";
}
