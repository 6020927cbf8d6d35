import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import type { CniError } from "../../conf/errors.ts";
import { tempDir } from "../../tests/testutils.ts";
import { BUILTINS } from "../catalog.ts";
import { createRegistry } from "./registry.ts";
import type { BuiltinDelegate } from "../types.ts";

/** A delegate that does nothing (the registry only loads and wraps it). */
const d: BuiltinDelegate<unknown> = {
  type: "rec",
  parseConf: (raw) => raw,
  add: () => Promise.resolve({ cniVersion: "1.1.0" }),
  del: () => Promise.resolve(),
  check: () => Promise.resolve(),
};

Deno.test("createRegistry() serves built-ins in-process, once per type", async () => {
  let loads = 0;
  const registry = createRegistry({ builtins: { rec: () => (loads++, Promise.resolve(d)) } });
  const a = await registry.get("rec", []);
  const b = await registry.get("rec", []);
  ok(a.builtin && a === b);
  assertEquals(loads, 1);
});

Deno.test("createRegistry() execs preferred-external and unknown types from CNI_PATH", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(`${dir.path}/rec`, "#!/bin/sh\necho '{}'\n", { mode: 0o755 });
  const registry = createRegistry({
    builtins: { rec: () => Promise.resolve(d) },
    preferExternal: ["rec"],
  });
  assertEquals((await registry.get("rec", [dir.path])).builtin, false);
  await rejects(registry.get("ppmissing", [dir.path]), (e: CniError) => e.code === 7);
});

Deno.test("inProcess() is true for built-ins only, and false once the conf prefers the binary", () => {
  const registry = createRegistry({ builtins: BUILTINS, preferExternal: ["macvlan"] });
  ok(registry.inProcess!("bridge"));
  assertEquals(registry.inProcess!("macvlan"), false);
  assertEquals(registry.inProcess!("tuning"), false);
  assertEquals(registry.inProcess!("toString"), false);
});

Deno.test("a ready-made plugin wins over a built-in of the same type and runs in-process", async () => {
  const ready = {
    type: "rec",
    builtin: true,
    traits: {},
    invoke: () => Promise.resolve(undefined),
  };
  const registry = createRegistry({
    builtins: { rec: () => Promise.resolve(d) },
    plugins: { rec: ready },
  });
  assertEquals(await registry.get("rec", []), ready);
  ok(registry.inProcess("rec"));
});

Deno.test("the built-in catalog is frozen", () => {
  ok(Object.isFrozen(BUILTINS));
  ok(Object.hasOwn(BUILTINS, "bridge") && !Object.hasOwn(BUILTINS, "toString"));
});
