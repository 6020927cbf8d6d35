import assert from "node:assert/strict";
import { loadLocalPolicies } from "./local.ts";

const policy = (name: string) =>
  `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ${name}}
spec:
  podSelector: {matchLabels: {app: web}}
`;

Deno.test("loadLocalPolicies() parses a file again exactly when its text changed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ppq-local" });
  try {
    await Deno.mkdir(`${dir}/default`);
    await Deno.mkdir(`${dir}/other`);
    await Deno.writeTextFile(`${dir}/default/a.yaml`, policy("aaa"));
    await Deno.writeTextFile(`${dir}/other/b.yaml`, policy("bbb"));
    const first = (await loadLocalPolicies(dir))!;
    assert.deepEqual(first.policies.map((p) => `${p.namespace}/${p.name}`), [
      "default/aaa",
      "other/bbb",
    ]);
    const again = (await loadLocalPolicies(dir))!;
    assert.equal(again.policies[0], first.policies[0], "an unchanged file is not parsed again");

    // The same size and the same times as before: only the bytes tell.
    const { mtime, atime } = Deno.statSync(`${dir}/default/a.yaml`);
    await Deno.writeTextFile(`${dir}/default/a.yaml`, policy("ccc"));
    await Deno.utime(`${dir}/default/a.yaml`, atime!, mtime!);
    const changed = (await loadLocalPolicies(dir))!;
    assert.deepEqual(changed.policies.map((p) => p.name), ["ccc", "bbb"]);
    assert.equal(changed.policies[1], first.policies[1]);

    await Deno.writeTextFile(`${dir}/default/a.yaml`, "spec: [unclosed");
    const broken = (await loadLocalPolicies(dir))!;
    assert.deepEqual(broken.policies.map((p) => p.name), ["bbb"]);
    assert.match(broken.issues[0].msg, /^not YAML: /);
    assert.equal((await loadLocalPolicies(dir))!.issues.length, 1, "kept as it was");

    await Deno.remove(`${dir}/other/b.yaml`);
    await Deno.writeTextFile(`${dir}/default/a.yaml`, policy("aaa"));
    assert.deepEqual((await loadLocalPolicies(dir))!.policies.map((p) => p.name), ["aaa"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
