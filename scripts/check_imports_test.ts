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
  assert.ok(floorOf("ffi/link.ts")! < floorOf("clients/etcd/client.ts")!);
  assert.ok(floorOf("clients/k8s/client.ts")! < floorOf("delegates/_shared/veth.ts")!);
  assert.ok(floorOf("meta/add.ts")! < floorOf("controllers/overlay/agent.ts")!);
  assert.ok(floorOf("controllers/controller.ts")! < floorOf("cli/serve.ts")!);
  assert.equal(floorOf("controllers/testing.ts"), undefined);
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

Deno.test("checkGraph() names a plugin importing a controller", () => {
  const v = checkGraph(graph({
    "delegates/ipam/dhcp/dhcp.ts": `import { k } from "../../../controllers/dhcp/keeper.ts";`,
    "controllers/dhcp/keeper.ts": "",
  }));
  assert.deepEqual(v.map((x) => x.kind), ["plugin-imports-controller"]);
  assert.match(v[0].text, /dhcp\.ts .* controllers\/dhcp\/keeper\.ts .*plugin imports controller/);
});

Deno.test("checkGraph() names a controller importing cli/, and a client importing up", () => {
  const v = checkGraph(graph({
    "controllers/ipam/reconciler.ts": `import type { Root } from "../../cli/root.ts";`,
    "clients/etcd/client.ts": `import { v } from "../../delegates/_shared/veth.ts";`,
    "cli/root.ts": "",
    "delegates/_shared/veth.ts": "",
  }));
  assert.deepEqual(v.map((x) => x.kind).sort(), ["controller-imports-cli", "upward"]);
});

Deno.test("checkGraph() allows controllers/ to import meta/, clients/ and delegates/", () => {
  const v = checkGraph(graph({
    "controllers/overlay/agent.ts": `import { a } from "../../meta/state.ts";\n` +
      `import { b } from "../../clients/etcd/client.ts";\n` +
      `import { c } from "../../delegates/main/overlay/sync.ts";`,
    "meta/state.ts": `import { e } from "../clients/k8s/client.ts";`,
    "delegates/main/overlay/sync.ts": `import { e } from "../../../clients/etcd/client.ts";`,
    "clients/etcd/client.ts": "",
    "clients/k8s/client.ts": "",
  }));
  assert.deepEqual(v, []);
});

Deno.test("checkGraph() finds each kind of resident loop in delegates/, not in tests or comments", () => {
  const loops = [
    "const t = setInterval(tick, 1000);",
    'const l = Deno.listen({ transport: "unix", path });',
    'const u = Deno.listenDatagram({ port: 67, transport: "udp" });',
    "for await (const e of Deno.watchFs(dir)) {}",
    "const w = new Watcher(etcd, prefix);",
    "for await (const ev of api.watch(path, signal)) {}",
  ];
  for (const line of loops) {
    const v = checkGraph(graph({ "delegates/main/thing.ts": line }));
    assert.deepEqual(v.map((x) => x.kind), ["resident-loop"], line);
    assert.match(v[0].text, /delegates\/main\/thing\.ts starts resident work .*controllers\//);
  }
  assert.deepEqual(
    checkGraph(graph({
      "delegates/main/thing_test.ts": loops.join("\n"),
      "delegates/_shared/testing.ts": loops.join("\n"),
      "delegates/main/thing.ts":
        "// setInterval(tick, 1000)\n/** Deno.listen() */\nsetTimeout(f, 1);",
      "controllers/overlay/agent.ts": loops.join("\n"),
      "clients/etcd/watch.ts": loops.join("\n"),
    })),
    [],
  );
});

Deno.test("checkGraph() exempts no module of delegates/ from the resident-loop rule", () => {
  // The modules that held loops until issue 21 moved them (the etcd watcher, the cluster
  // IPAM's affinity keeper) are caught like any other if a loop comes back.
  for (const path of ["delegates/ipam/cluster/affinity.ts", "delegates/_shared/etcd/watch.ts"]) {
    const v = checkGraph(graph({ [path]: "const t = setInterval(tick, 60_000);" }));
    assert.deepEqual(v.map((x) => x.kind), ["resident-loop"], path);
  }
});

Deno.test("checkGraph() reports meta/ importing a controller and a client importing meta/", () => {
  const v = checkGraph(graph({
    "meta/hotplug.ts": `import { d } from "../controllers/dynamic/dynamic.ts";`,
    "clients/k8s/watch.ts": `import { s } from "../../meta/state.ts";`,
    "controllers/dynamic/dynamic.ts": "",
    "meta/state.ts": "",
  }));
  assert.deepEqual(v.map((x) => x.kind), ["upward", "upward"]);
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
