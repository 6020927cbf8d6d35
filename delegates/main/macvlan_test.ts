import assert from "node:assert/strict";
import { CniError } from "../../conf/errors.ts";
import { makeMacvlan } from "./macvlan.ts";
import {
  ipJson,
  isRoot,
  linkExists,
  run,
  tempDir,
  tempNetns,
  type TestNetns,
} from "../../tests/testutils.ts";
import { addVethPair, type Any, exists, invoker, isCode, rig } from "../_shared/testing.ts";

/** Gives a "host" netns a master link `ppm0` (up, addressed, the default route's interface). */
function withMaster(mtu = 1500) {
  return async (host: TestNetns) => {
    await addVethPair(host.name, "ppm0", "ppm1", mtu);
    await run("ip", "-n", host.name, "link", "set", "ppm0", "up");
    await run("ip", "-n", host.name, "addr", "add", "192.0.2.10/24", "dev", "ppm0");
    await run("ip", "-n", host.name, "route", "add", "default", "via", "192.0.2.1");
  };
}

function conf(dataDir: string, extra: object = {}, ipam: object = {}) {
  return {
    cniVersion: "1.0.0",
    name: "ppmv",
    type: "macvlan",
    master: "ppm0",
    ipam: { type: "host-local", subnet: "10.250.8.0/24", dataDir, ...ipam },
    ...extra,
  };
}

Deno.test("macvlan parseConf defaults the mode to bridge and rejects unknown modes", () => {
  const d = makeMacvlan();
  assert.equal(d.parseConf({}).mode, "bridge");
  assert.throws(() => d.parseConf({ mode: "weird" }), isCode(7));
});

Deno.test({
  name: "macvlan ADD, CHECK and DEL manage the link, addresses and lease",
  ignore: !isRoot,
  async fn() {
    await using t = await rig(makeMacvlan, withMaster());
    const { pod, call } = t;
    const env = { containerId: "m1", netns: pod.path, ifname: "net1" };
    // No "master": the default-route interface of the host netns (ppm0) is used.
    const c = { ...conf(t.data), master: undefined, mode: "private" };
    const res = await call("ADD", c, env);
    assert.deepStrictEqual(res.ips, [{
      address: "10.250.8.2/24",
      gateway: "10.250.8.1",
      interface: 0,
    }]);
    assert.equal(res.interfaces.length, 1);
    assert.equal(res.interfaces[0].sandbox, pod.path);
    const [l] = await ipJson(pod.name, "-d", "addr", "show", "dev", "net1");
    assert.equal(l.address, res.interfaces[0].mac);
    assert.equal((l.linkinfo as Any).info_kind, "macvlan");
    assert.equal((l.linkinfo as Any).info_data.mode, "private");
    assert.ok(JSON.stringify(l.addr_info).includes('"10.250.8.2"'));

    await call("CHECK", { ...c, prevResult: res }, env);
    await run("ip", "-n", pod.name, "addr", "del", "10.250.8.2/24", "dev", "net1");
    await assert.rejects(call("CHECK", { ...c, prevResult: res }, env), CniError);
    await call("DEL", c, env);
    await call("DEL", c, env);
    assert.equal(await linkExists(pod.name, "net1"), false);
    assert.equal(await exists(`${t.data}/ppmv/10.250.8.2`), false);
  },
});

Deno.test({
  name: "macvlan rejects an MTU above the master's with code 7 and creates nothing",
  ignore: !isRoot,
  async fn() {
    await using t = await rig(makeMacvlan, withMaster(1400));
    const { pod, call } = t;
    const env = { containerId: "m2", netns: pod.path, ifname: "net1" };
    await assert.rejects(
      call("ADD", conf(t.data, { mtu: 1500 }), env),
      (e: unknown) => isCode(7)(e) && /exceeds the master's 1400/.test((e as Error).message),
    );
    assert.equal(await linkExists(pod.name, "net1"), false);
    const res = await call("ADD", conf(t.data, { mtu: 1300 }), env);
    const [l] = await ipJson(pod.name, "link", "show", "dev", "net1");
    assert.equal(l.mtu, 1300);
    await call("DEL", conf(t.data), env);
    assert.ok(res);
  },
});

Deno.test({
  name: "macvlan ADD leaves nothing behind when IPAM or a later step fails",
  ignore: !isRoot,
  async fn() {
    await using t = await rig(makeMacvlan, withMaster());
    const { pod, call } = t;
    const env = { containerId: "m3", netns: pod.path, ifname: "net1" };
    for (
      const c of [
        conf(t.data, { ipam: { type: "pp-no-such-ipam" } }),
        conf(t.data, {}, { routes: [{ dst: "10.99.0.0/16", gw: "192.0.2.77" }] }),
      ]
    ) {
      await assert.rejects(call("ADD", c, env));
      assert.equal(await linkExists(pod.name, "net1"), false);
      const leases = await Array.fromAsync(Deno.readDir(t.data)).then(async (ds) =>
        ds.length ? (await Array.fromAsync(Deno.readDir(`${t.data}/ppmv`))).map((e) => e.name) : []
      );
      assert.deepStrictEqual(leases.filter((f) => f.startsWith("10.")), []);
    }
  },
});

Deno.test({
  name: "macvlan DEL after the netns is gone still releases the lease",
  ignore: !isRoot,
  async fn() {
    await using t = await rig(makeMacvlan, withMaster());
    const { pod, call } = t;
    const env = { containerId: "m4", netns: pod.path, ifname: "net1" };
    try {
      await call("ADD", conf(t.data), env);
    } finally {
      await pod[Symbol.asyncDispose]();
    }
    await call("DEL", conf(t.data), env);
    assert.equal(await exists(`${t.data}/ppmv/10.250.8.2`), false);
  },
});

Deno.test({
  name: "macvlan with linkInContainer finds its master in the container netns",
  ignore: !isRoot,
  async fn() {
    await using pod = await tempNetns("c");
    await using data = await tempDir();
    await addVethPair(pod.name, "ppm0", "ppm1");
    await run("ip", "-n", pod.name, "link", "set", "ppm0", "up");
    const call = invoker(makeMacvlan());
    const env = { containerId: "m5", netns: pod.path, ifname: "net1" };
    const c = conf(data.path, { linkInContainer: true });
    const res = await call("ADD", c, env);
    assert.equal(res.interfaces[0].name, "net1");
    await call("CHECK", { ...c, prevResult: res }, env);
    await call("DEL", c, env);
    assert.equal(await linkExists(pod.name, "net1"), false);
  },
});
