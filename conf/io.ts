/**
 * Whole writes to a file or a standard stream: a `writeSync` may write less than it was
 * given (a pipe that is full, a signal), so every write of podplex goes through here.
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * Writes all of `data` to a sync writer, retrying short writes.
 *
 * @returns the number of bytes written (all of them)
 * @example
 * ```ts
 * writeAllSync(Deno.stderr, "podplex: done\n");
 * ```
 */
export function writeAllSync(
  file: { writeSync(p: Uint8Array): number },
  data: Uint8Array | string,
): number {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  let off = 0;
  while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
  return off;
}
