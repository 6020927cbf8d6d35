import assert from "node:assert/strict";
import { definitionName, validateDefinition } from "./_definitions.ts";

async function withFile(rel: string, text: string, fn: (path: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "ppvalidate" });
  try {
    const path = `${dir}/${rel}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(path, text);
    await fn(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("definitionName() reads namespace, name and extension as the resolver names files", () => {
  assert.deepEqual(definitionName("/x/networks.d/demo/lan.yaml"), {
    namespace: "demo",
    name: "lan",
    ext: "yaml",
  });
});

Deno.test("validateDefinition() accepts a plain YAML conf without a name", async () => {
  await withFile(
    "default/lan.yaml",
    "cniVersion: 1.0.0\ntype: bridge\nipam: {type: host-local, subnet: 10.1.0.0/24}\n",
    async (p) => {
      assert.deepEqual(await validateDefinition(p), []);
    },
  );
});

Deno.test("validateDefinition() reports the IPAM error under the ipam path", async () => {
  const conf = {
    cniVersion: "1.0.0",
    type: "bridge",
    ipam: { type: "host-local", subnet: "nope" },
  };
  await withFile("default/lan.json", JSON.stringify(conf), async (p) => {
    const problems = await validateDefinition(p);
    assert.equal(problems.length, 1);
    assert.equal(problems[0].path, "ipam");
    assert.match(problems[0].message, /nope/);
  });
});

Deno.test("validateDefinition() reports broken JSON and unknown extensions", async () => {
  await withFile("default/x.json", "{", async (p) => {
    const [problem] = await validateDefinition(p);
    assert.equal(problem.path, "");
    assert.ok(problem.message.length > 0);
  });
  await withFile("default/x.txt", "{}", async (p) => {
    const [problem] = await validateDefinition(p);
    assert.match(problem.message, /\.conflist/);
  });
});

Deno.test("validateDefinition() checks a NAD's spec.config and metadata", async () => {
  const nad = {
    kind: "NetworkAttachmentDefinition",
    metadata: { name: "m", namespace: "elsewhere" },
    spec: { config: "[1]" },
  };
  await withFile("default/m.json", JSON.stringify(nad), async (p) => {
    const problems = await validateDefinition(p);
    assert.deepEqual(problems.map((x) => x.path), ["metadata.namespace", "spec.config"]);
  });
});
