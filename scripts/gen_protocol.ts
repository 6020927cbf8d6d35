/**
 * Writes what other languages need of the serve protocol (cli/serve/protocol.ts), so that
 * the protocol is spelled once: `--c FILE` the C header bin/podplex-client.c (and the node
 * artifact's entry, bin/node-entry.c, which includes it) is compiled with.
 * A file is rewritten only when its text changes (make-style rebuild checks stay quiet).
 *
 * usage: deno run --allow-read --allow-write scripts/gen_protocol.ts --c FILE
 *
 * @module
 */
import { cHeader } from "../cli/serve/protocol.ts";

function writeIfChanged(path: string, text: string): void {
  try {
    if (Deno.readTextFileSync(path) === text) return;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  Deno.writeTextFileSync(`${path}.new`, text);
  Deno.renameSync(`${path}.new`, path);
}

if (import.meta.main) {
  const args = [...Deno.args];
  if (args.length === 0 || args.length % 2) {
    console.error("usage: gen_protocol.ts --c FILE");
    Deno.exit(2);
  }
  for (let i = 0; i < args.length; i += 2) {
    const [flag, path] = [args[i], args[i + 1]];
    if (flag === "--c") writeIfChanged(path, cHeader());
    else {
      console.error(`gen_protocol.ts: unknown flag "${flag}"`);
      Deno.exit(2);
    }
  }
}
