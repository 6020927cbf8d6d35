import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import type { CniError } from "../conf/errors.ts";
import type { BuiltinDelegate } from "../delegates/types.ts";
import { createRoot } from "./root.ts";

/** A built-in table whose delegates record being loaded. */
function table(loaded: string[]) {
  const d = (type: string): BuiltinDelegate<unknown> => ({
    type,
    parseConf: (raw) => raw,
    add: () => Promise.resolve({ cniVersion: "1.1.0" }),
    del: () => Promise.resolve(),
    check: () => Promise.resolve(),
  });
  return {
    ppone: () => (loaded.push("ppone"), Promise.resolve(d("ppone"))),
    pptwo: () => (loaded.push("pptwo"), Promise.resolve(d("pptwo"))),
  };
}

Deno.test("resolver() serves a built-in type with its built-in, in-process", async () => {
  const loaded: string[] = [];
  const plugin = await createRoot({ builtins: table(loaded) }).resolver()("ppone");
  assertEquals([plugin.type, plugin.builtin, loaded], ["ppone", true, ["ppone"]]);
  ok(plugin.call);
});

Deno.test("resolver() runs the built-in named by argv0 whatever the conf's type", async () => {
  const loaded: string[] = [];
  const plugin = await createRoot({ builtins: table(loaded) }).resolver("pptwo")("ppone");
  assertEquals([plugin.type, loaded], ["pptwo", ["pptwo"]]);
});

Deno.test("resolver() gives the meta-plugin for podplex, also when run as podplex", async () => {
  const root = createRoot({ builtins: table([]) });
  const plugin = await root.resolver("podplex")("podplex");
  assertEquals(plugin.type, "podplex");
  assertEquals(plugin, await root.meta());
  ok(plugin.traits.namesItsErrors);
});

Deno.test("resolver() refuses a type podplex cannot serve with code 7, loading nothing", async () => {
  const loaded: string[] = [];
  await rejects(
    createRoot({ builtins: table(loaded) }).resolver("podplex")("ppunknown"),
    (e: CniError) => e.code === 7 && e.message === `podplex cannot serve plugin type "ppunknown"`,
  );
  assertEquals(loaded, []);
});

Deno.test("registry() keeps one registry per preferExternal set and loads a built-in once", async () => {
  const loaded: string[] = [];
  const root = createRoot({ builtins: table(loaded) });
  assertEquals(root.registry(["a", "b"]), root.registry(["b", "a"]));
  ok(root.registry() !== root.registry(["a"]));
  await root.registry().get("ppone", []);
  await root.registry().get("ppone", []);
  assertEquals(loaded, ["ppone"]);
  assertEquals(root.registry(["ppone"]).inProcess("ppone"), false);
});
