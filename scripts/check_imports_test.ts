import assert from "node:assert/strict";
import { checkGraph, floorOf, importsOf } from "./check_imports.ts";

const graph = (entries: Record<string, string>) => new Map(Object.entries(entries));

Deno.test("importsOf() finds static, dynamic and type imports, not ones in comments", () => {
  const src = `import { a } from "./a.ts";\nimport type { B } from "../b.ts";\n` +
    `const c = () => import("./c.ts");\nimport "./d.ts";\n` +
    `/** import { x } from "./x.ts"; */\n// import "./y.ts";\n`;
  assert.deepEqual(importsOf(src), ["./a.ts", "../b.ts", "./c.ts", "./d.ts"]);
});

Deno.test("floorOf() puts conf lowest and cli highest; test code has no floor", () => {
  assert.equal(floorOf("conf/errors.ts"), 0);
  assert.ok(floorOf("delegates/_shared/veth.ts")! < floorOf("delegates/main/bridge.ts")!);
  assert.ok(floorOf("delegates/ipam/static.ts")! < floorOf("delegates/runner/chain.ts")!);
  assert.ok(floorOf("meta/add.ts")! < floorOf("cli/root.ts")!);
  assert.equal(floorOf("meta/add_test.ts"), undefined);
  assert.equal(floorOf("delegates/runner/testing.ts"), undefined);
});

Deno.test("checkGraph() reports an import up a floor", () => {
  const v = checkGraph(graph({
    "delegates/runner/registry.ts": `import { p } from "../../meta/plugin.ts";`,
    "meta/plugin.ts": "",
  }));
  assert.deepEqual(v.map((x) => x.kind), ["upward"]);
  assert.match(v[0].text, /registry\.ts .* meta\/plugin\.ts/);
});

Deno.test("checkGraph() reports a cycle, also one of type imports, with its path", () => {
  const v = checkGraph(graph({
    "meta/add.ts": `import type { C } from "./context.ts";`,
    "meta/context.ts": `import { x } from "./plan.ts";`,
    "meta/plan.ts": `import { y } from "./add.ts";`,
  }));
  assert.deepEqual(v.map((x) => x.kind), ["cycle"]);
  assert.match(v[0].text, /meta\/add\.ts -> meta\/context\.ts -> meta\/plan\.ts -> meta\/add\.ts/);
});

Deno.test("checkGraph() refuses product code importing test code, allows the reverse", () => {
  const v = checkGraph(graph({
    "meta/add.ts": `import { t } from "../tests/testutils.ts";`,
    "meta/add_test.ts": `import { a } from "./add.ts"; import { p } from "../cli/root.ts";`,
    "tests/testutils.ts": "",
  }));
  assert.deepEqual(v.map((x) => x.kind), ["test-import"]);
});

Deno.test("the tree itself keeps the rules", async () => {
  const root = new URL("..", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "scripts/check_imports.ts"],
    cwd: root,
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
});
