/**
 * The bench's probe: podplex's own `cli/main.ts` behind the instrumentation of
 * `_probe_hooks.ts`, bundled like `dist/podplex.js` and run with the same flags, so one ADD
 * can be split into runtime start, module load, symbol binding, kernel work, file writes and
 * the rest. Writes its report to `PP_PROBE_REPORT`.
 *
 * @module
 */
import { marks, now, report } from "./_probe_hooks.ts";
import { main } from "../cli/main.ts";

marks.loaded = now();
const code = await main([], Deno.env.toObject());
marks.done = now();
report(Deno.env.get("PP_PROBE_REPORT") ?? "/dev/stderr", code);
Deno.exit(code);
