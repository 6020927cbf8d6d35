import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import type { CniError } from "../../conf/errors.ts";
import { tempDir } from "../../tests/testutils.ts";
import { createRegistry, isBuiltin } from "./registry.ts";
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

Deno.test("isBuiltin() refuses unknown types and names inherited from Object", () => {
  ok(isBuiltin("bridge"));
  assertEquals(isBuiltin("ppnotatype"), false);
  assertEquals(isBuiltin("toString"), false);
});

Deno.test("inProcess() is true for built-ins only, and false once the conf prefers the binary", () => {
  const registry = createRegistry({ preferExternal: ["macvlan"] });
  ok(registry.inProcess!("bridge"));
  assertEquals(registry.inProcess!("macvlan"), false);
  assertEquals(registry.inProcess!("tuning"), false);
  assertEquals(registry.inProcess!("toString"), false);
});
