/**
 * The trivial script whose `deno run` (bundled, same flags as `bin/podplex`) is the runtime's
 * start cost. With `PODPLEX_TRACE=1` it writes podplex's trace line with one `entry` mark, so
 * the bench reads its start the same way as podplex's.
 *
 * @module
 */
if (Deno.env.get("PODPLEX_TRACE") === "1") {
  const entry = performance.timeOrigin + performance.now();
  const line = `PODPLEX_TRACE ${JSON.stringify({ marks: [["entry", entry], ["exit", entry]] })}\n`;
  Deno.stderr.writeSync(new TextEncoder().encode(line));
}
