/**
 * The bench's probe: podplex's own `cli/main.ts` behind the instrumentation of
 * `_probe_hooks.ts`, bundled like `dist/` and run with the same flags, for what podplex's
 * trace marks cannot split out of a phase: time inside C calls, symbol binding, file calls
 * by directory and lazy chunk imports. Writes its report to `PP_PROBE_REPORT`.
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
