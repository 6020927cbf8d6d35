/**
 * The trivial script whose `deno run` (bundled, same flags as `bin/podplex`) is the runtime's
 * start cost. It only records when its first statement ran, when asked to.
 *
 * @module
 */
const report = Deno.env.get("PP_PROBE_REPORT");
if (report) {
  const firstJs = performance.timeOrigin + performance.now();
  const forkMs = Number(Deno.env.get("PP_FORK_REALTIME_US")) / 1000;
  Deno.writeTextFileSync(report, JSON.stringify({ forkMs, marks: { firstJs } }));
}
