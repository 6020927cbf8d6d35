import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import type { CniError } from "../conf/errors.ts";
import type { Plugin, PluginRegistry } from "../delegates/types.ts";
import { BUILTIN_TYPES } from "../delegates/runner/registry.ts";
import { defaultResolver, main, SUBCOMMANDS } from "./main.ts";

/** A registry that answers with a stub plugin named after the type asked for. */
function stubRegistry(asked: string[]): PluginRegistry {
  return {
    get(type: string): Promise<Plugin> {
      asked.push(type);
      return Promise.resolve({ type, builtin: true, invoke: () => Promise.resolve(undefined) });
    },
  };
}

const builtin = BUILTIN_TYPES[0];

Deno.test({
  name: "defaultResolver() serves a built-in type with its built-in",
  ignore: builtin === undefined,
  async fn() {
    const asked: string[] = [];
    assertEquals((await defaultResolver(undefined, stubRegistry(asked))(builtin)).type, builtin);
    assertEquals(asked, [builtin]);
  },
});

Deno.test({
  name: "defaultResolver() runs the built-in named by PODPLEX_ARGV0 whatever the conf's type",
  ignore: builtin === undefined,
  async fn() {
    const asked: string[] = [];
    const plugin = await defaultResolver(builtin, stubRegistry(asked))("some-other-type");
    assertEquals([plugin.type, asked], [builtin, [builtin]]);
  },
});

Deno.test("defaultResolver() refuses a type podplex cannot serve with code 7", async () => {
  const asked: string[] = [];
  await rejects(
    defaultResolver("podplex", stubRegistry(asked))("ppunknown"),
    (e: CniError) => e.code === 7 && e.message === `podplex cannot serve plugin type "ppunknown"`,
  );
  assertEquals(asked, []);
});

Deno.test("main() dispatches a known subcommand and rejects an unknown one", async () => {
  let got: string[] = [];
  SUBCOMMANDS.pptest = () => Promise.resolve({ main: (argv) => (got = argv, Promise.resolve(7)) });
  try {
    assertEquals(await main(["pptest", "a", "b"], {}), 7);
    assertEquals(got, ["a", "b"]);
    assertEquals(await main(["ppnosuchcommand"], {}), 2);
  } finally {
    delete SUBCOMMANDS.pptest;
  }
});
