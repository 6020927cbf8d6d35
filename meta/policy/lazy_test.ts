import assert from "node:assert/strict";
import { hasPolicyFiles, lazyLocalSource } from "./lazy.ts";
import type { PodView } from "./types.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** The policy modules a CNI call must not load when there is no local policy. */
const POLICY_CODE = [
  "meta/policy/local.ts",
  "meta/policy/parse.ts",
  "meta/policy/resolve.ts",
  "meta/policy/render.ts",
  "meta/policy/enforce.ts",
  "meta/policy/check.ts",
  "meta/policy/selector.ts",
];

/**
 * The relative modules `path` imports statically, with a value (what a bundle must load
 * before the module runs): `import x from`, `import {a} from`, `export {a} from`,
 * `import "x"`. Left out: `import type`/`export type` (erased) and `import("x")` (a chunk
 * loaded when it runs). A named list holding only `type` names counts as a value import, to
 * err on the side of failing.
 */
function staticImports(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const out: string[] = [];
  const re =
    /(?:^|[;\n])\s*(?:import|export)\s+(type\s+)?(?:[\s\S]*?\s+from\s*)?["'](\.{1,2}\/[^"']+)["']/g;
  for (const m of code.matchAll(re)) if (!m[1]) out.push(m[2]);
  return out;
}

function resolve(from: string, rel: string): string {
  const parts = from.split("/").slice(0, -1);
  for (const p of rel.split("/")) {
    if (p === "..") parts.pop();
    else if (p !== ".") parts.push(p);
  }
  return parts.join("/");
}

/** Every module reachable from `entry` by static value imports (paths from the repo root). */
function staticClosure(entry: string): Set<string> {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length) {
    const path = todo.pop()!;
    if (seen.has(path)) continue;
    seen.add(path);
    const text = Deno.readTextFileSync(ROOT + path);
    for (const rel of staticImports(text)) todo.push(resolve(path, rel));
  }
  return seen;
}

Deno.test("staticImports() tells value imports from type-only and dynamic ones", () => {
  const src = `import { a } from "./a.ts";
import type { B } from "./b.ts";
import {
  c,
  type D,
} from "../c.ts";
export { e } from "./e.ts";
export type { F } from "./f.ts";
import "./g.ts";
const h = await import("./h.ts");
// import { i } from "./i.ts";
`;
  assert.deepEqual(staticImports(src), ["./a.ts", "../c.ts", "./e.ts", "./g.ts"]);
});

Deno.test("the meta-plugin's static graph holds no policy code (it is imported when needed)", () => {
  const graph = staticClosure("meta/plugin.ts");
  // The closure is real: it reaches the ADD and the policy step.
  for (
    const m of ["meta/add.ts", "meta/context.ts", "meta/policy_step.ts", "meta/policy/lazy.ts"]
  ) {
    assert.ok(graph.has(m), `${m} is not in the graph of meta/plugin.ts`);
  }
  const loaded = POLICY_CODE.filter((m) => graph.has(m));
  assert.deepEqual(loaded, [], "statically imported by the meta-plugin: " + loaded.join(", "));
});

Deno.test("hasPolicyFiles() is false for a missing, empty or policy-less folder", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ppq-lazy" });
  try {
    assert.equal(hasPolicyFiles(`${dir}/none`), false);
    assert.equal(hasPolicyFiles(dir), false);
    await Deno.mkdir(`${dir}/default`);
    assert.equal(hasPolicyFiles(dir), false); // an empty namespace
    await Deno.writeTextFile(`${dir}/default/README.txt`, "not a policy");
    await Deno.writeTextFile(`${dir}/default/.hidden.yaml`, "kind: NetworkPolicy");
    await Deno.writeTextFile(`${dir}/loose.yaml`, "kind: NetworkPolicy"); // not in a namespace
    await Deno.mkdir(`${dir}/default/sub.yaml`); // a folder, not a file
    assert.equal(hasPolicyFiles(dir), false);
    assert.equal(hasPolicyFiles(`${dir}/loose.yaml`), false); // not a folder
    await Deno.writeTextFile(`${dir}/default/p.yml`, "kind: NetworkPolicy");
    assert.equal(hasPolicyFiles(dir), true);
    await Deno.remove(`${dir}/default/p.yml`);
    await Deno.mkdir(`${dir}/other`);
    await Deno.writeTextFile(`${dir}/other/p.json`, "{}");
    assert.equal(hasPolicyFiles(dir), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lazyLocalSource() is no source without files, else the local source", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ppq-lazy" });
  const opts = { states: () => Promise.resolve([]), log: console as never };
  try {
    assert.equal(lazyLocalSource(dir, opts), undefined);
    await Deno.mkdir(`${dir}/default`);
    await Deno.writeTextFile(
      `${dir}/default/deny.json`,
      JSON.stringify({
        apiVersion: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        metadata: { name: "deny" },
        spec: { podSelector: {} },
      }),
    );
    const source = lazyLocalSource(dir, opts);
    assert.ok(source);
    const pod: PodView = { namespace: "default", name: "a", labels: {}, interfaces: [], ports: [] };
    const world = await source.worldFor(pod);
    assert.ok(world && world !== "unsynced");
    assert.deepEqual(world.policies.map((p) => p.name), ["deny"]);
    assert.deepEqual(world.pods.map((p) => p.name), ["a"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
