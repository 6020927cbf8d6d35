import assert from "node:assert/strict";
import { NetlinkError } from "../../ffi/mod.ts";
import type { DelegateContext } from "../types.ts";
import { chainedMaster, makeIpvlan } from "./ipvlan.ts";
import { isRoot, linkExists, type TestNetns } from "../../tests/testutils.ts";
import { addVethPair, exists, isCode, rig } from "../_shared/testing.ts";

function ctxWith(prevResult?: DelegateContext["prevResult"]): DelegateContext {
  return {
    env: { path: [] },
    cniArgs: new Map(),
    raw: {},
    prevResult,
    ipam: () => Promise.resolve(undefined),
    ipamTraits: () => Promise.resolve({}),
  };
}

Deno.test("ipvlan parseConf defaults the mode to l2 and accepts l3 and l3s only", () => {
  const d = makeIpvlan();
  assert.equal(d.parseConf({}).mode, "l2");
  assert.equal(d.parseConf({ mode: "l3s" }).mode, "l3s");
  assert.throws(() => d.parseConf({ mode: "bridge" }), isCode(7));
});

Deno.test("a chained ipvlan without master takes the single interface of prevResult", () => {
  const c = makeIpvlan().parseConf({});
  const one = { cniVersion: "1.1.0", interfaces: [{ name: "eth0", sandbox: "/x" }] };
  assert.equal(chainedMaster(c, ctxWith(one)).master, "eth0");
  assert.equal(chainedMaster(c, ctxWith()).master, undefined);
  const two = { cniVersion: "1.1.0", interfaces: [{ name: "a" }, { name: "b" }] };
  assert.throws(() => chainedMaster(c, ctxWith(two)), isCode(7));
});

Deno.test({
  name: "ipvlan ADD creates the link or, without kernel support, fails leaving nothing",
  ignore: !isRoot,
  async fn(ctx) {
    const master = (host: TestNetns) => addVethPair(host.name, "ppm0", "ppm1");
    await using t = await rig(makeIpvlan, master);
    const { pod, call } = t;
    const conf = {
      cniVersion: "1.0.0",
      name: "ppiv",
      type: "ipvlan",
      master: "ppm0",
      mode: "l3",
      ipam: { type: "host-local", subnet: "10.250.9.0/24", dataDir: t.data },
    };
    const env = { containerId: "i1", netns: pod.path, ifname: "net1" };
    let res: Record<string, unknown> | undefined;
    try {
      res = await call("ADD", conf, env);
    } catch (err) {
      const cause = (err as Error).cause;
      if (!(cause instanceof NetlinkError && cause.kind === "notsupported")) throw err;
      assert.equal(await linkExists(pod.name, "net1"), false);
      assert.equal(await exists(`${t.data}/ppiv/10.250.9.2`), false);
      await call("DEL", conf, env);
      await ctx.step({
        name: `kernel part skipped: ${cause.message}`,
        ignore: true,
        fn() {},
      });
      return;
    }
    assert.deepStrictEqual((res!.ips as unknown[]).length, 1);
    await call("DEL", conf, env);
    assert.equal(await linkExists(pod.name, "net1"), false);
  },
});
