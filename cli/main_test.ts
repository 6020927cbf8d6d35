import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { main, SUBCOMMANDS } from "./main.ts";

Deno.test("main() dispatches a known subcommand and rejects an unknown one", async () => {
  let got: string[] = [];
  const subcommands = {
    ...SUBCOMMANDS,
    pptest: () => Promise.resolve({ main: (argv: string[]) => (got = argv, Promise.resolve(7)) }),
  };
  assertEquals(await main(["pptest", "a", "b"], {}, { subcommands }), 7);
  assertEquals(got, ["a", "b"]);
  assertEquals(await main(["ppnosuchcommand"], {}, { subcommands }), 2);
});
