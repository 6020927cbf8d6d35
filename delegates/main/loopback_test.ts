import assert from "node:assert/strict";
import type { PluginRequest } from "../types.ts";
import { loopback } from "./loopback.ts";
import { ipJson, isRoot, tempNetns } from "../../tests/testutils.ts";
import { invoker } from "../_shared/testing.ts";

const invoke = invoker(loopback);

function call(command: PluginRequest["command"], conf: object, netns: string) {
  return invoke(command, conf, { containerId: "ctr", netns, ifname: "lo", path: [] });
}

async function loUp(ns: string): Promise<boolean> {
  const [lo] = await ipJson(ns, "link", "show", "dev", "lo");
  return (lo.flags as string[]).includes("UP");
}

const conf = { cniVersion: "1.0.0", name: "lo", type: "loopback" };

Deno.test({
  name: "loopback ADD brings lo up and reports its loopback addresses, DEL brings it down",
  ignore: !isRoot,
  async fn() {
    await using ns = await tempNetns("lo");
    await call("DEL", conf, ns.path);
    assert.equal(await loUp(ns.name), false);
    const res = await call("ADD", conf, ns.path) as Record<string, unknown>;
    assert.equal(await loUp(ns.name), true);
    assert.deepStrictEqual(res.interfaces, [
      { name: "lo", mac: "00:00:00:00:00:00", sandbox: ns.path },
    ]);
    const ips = (res.ips as Array<{ address: string; interface: number }>).map((i) => i.address);
    assert.equal(ips[0], "127.0.0.1/8");
    await call("CHECK", { ...conf, prevResult: res }, ns.path);
    await call("DEL", conf, ns.path);
    await call("DEL", conf, ns.path);
    assert.equal(await loUp(ns.name), false);
    await assert.rejects(call("CHECK", { ...conf, prevResult: res }, ns.path), /down/);
  },
});

Deno.test({
  name: "loopback passes a prevResult through and DEL of a gone netns succeeds",
  ignore: !isRoot,
  async fn() {
    await using ns = await tempNetns("lo");
    const prev = { cniVersion: "1.0.0", ips: [{ address: "10.9.9.9/24" }] };
    const res = await call("ADD", { ...conf, prevResult: prev }, ns.path);
    assert.deepStrictEqual(res, prev);
    await call("DEL", conf, "/run/netns/pp-no-such-netns");
  },
});
