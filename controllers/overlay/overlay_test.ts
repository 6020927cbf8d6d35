import assert from "node:assert/strict";
import { CniError } from "../../conf/errors.ts";
import { testContext } from "../testing.ts";
import { startOverlay } from "./overlay.ts";

// No root needed: etcd is a closed loopback port, so the agent never joins and no kernel
// state is touched; what is shown is the controller's shape and its back-off on the clock.

async function confFile(dir: string, extra: Record<string, unknown> = {}): Promise<string> {
  const path = `${dir}/cluster.conflist`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      cniVersion: "1.0.0",
      name: "ppk-cluster",
      plugins: [{
        type: "podplex-cluster",
        etcdEndpoints: ["http://127.0.0.1:1"],
        etcdTimeoutMs: 200,
        network: "10.166.0.0/16",
        node: "ppk-n1",
        dataDir: `${dir}/data`,
        ...extra,
      }],
    }),
  );
  return path;
}

Deno.test("startOverlay() refuses a bad conf with code 7 and starts nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ppk-overlay-" });
  try {
    const ctx = testContext();
    await Deno.writeTextFile(`${dir}/bad.conf`, `{"name": "x", "type": "bridge"}`);
    await assert.rejects(
      () => startOverlay({ ...ctx, confFiles: [`${dir}/bad.conf`] }),
      (e) =>
        e instanceof CniError && e.code === 7 &&
        /"bridge" is not "podplex-cluster"/.test(e.message),
    );
    await assert.rejects(
      async () =>
        startOverlay({ ...ctx, confFiles: [await confFile(dir, { kubeSubnetMgr: true })] }),
      (e) => e instanceof CniError && e.code === 7 && /no Kubernetes API/.test(e.message),
    );
    assert.equal(ctx.clock.pending, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the overlay controller retries a join on its clock's back-off, reconciles and closes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ppk-overlay-" });
  try {
    const ctx = testContext();
    const c = await startOverlay({ ...ctx, confFiles: [await confFile(dir)] });
    assert.equal(c.name, "overlay");
    assert.equal(c.agents.length, 1);
    const tries = (ms: number) => ctx.lines.filter((l) => l.includes(`trying again in ${ms} ms`));
    const until = async (ok: () => boolean) => {
      for (let i = 0; i < 400 && !ok(); i++) await new Promise((r) => setTimeout(r, 25));
      assert.ok(ok(), ctx.lines.join("\n"));
    };
    await until(() => tries(500).length === 1);
    assert.match(tries(500)[0], /^cluster network "ppk-cluster": cannot join: /);
    // The fake clock has not moved: no second attempt however long the test waits.
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(tries(1000).length, 0);
    await ctx.clock.advance(500);
    await until(() => tries(1000).length === 1);
    await c.reconcile(); // before any join: nothing to list, returns
    assert.equal(c.agents[0].state, undefined);
    await c.close(); // wakes the back-off sleep
    await c.close();
    await c.reconcile();
    assert.equal(ctx.clock.pending, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
