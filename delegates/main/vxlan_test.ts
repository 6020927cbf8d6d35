import assert from "node:assert/strict";
import { makeVxlan, parseVxlanConf, type RemoteSource, segmentMtu } from "./vxlan.ts";
import { isRoot, linkExists, run, tempNetns, type TestNetns } from "../../tests/testutils.ts";
import { addVethPair, isCode, rig } from "../_shared/testing.ts";

Deno.test("parseVxlanConf() names the bridge and device after the VNI and defaults port 4789", () => {
  const c = parseVxlanConf({ vni: 7, remotes: ["10.0.0.2"] });
  assert.equal(c.bridge, "vxbr7");
  assert.equal(c.vxlanName, "vx7");
  assert.equal(c.port, 4789);
  assert.deepStrictEqual(c.remotes, ["10.0.0.2"]);
  assert.throws(() => parseVxlanConf({}), isCode(7));
  assert.throws(() => parseVxlanConf({ vni: 1, remotes: ["nope"] }), isCode(7));
  assert.throws(() => parseVxlanConf({ vni: 0x1000000 }), isCode(7));
});

Deno.test("segmentMtu() takes 50 bytes off an IPv4 underlay and 70 off an IPv6 one", () => {
  assert.equal(segmentMtu(1500, parseVxlanConf({ vni: 1 }), ["10.0.0.2"]), 1450);
  assert.equal(segmentMtu(1500, parseVxlanConf({ vni: 1 }), ["fd00::2"]), 1430);
  assert.equal(segmentMtu(1500, parseVxlanConf({ vni: 1, mtu: 1400 }), []), 1400);
  assert.throws(() => segmentMtu(1500, parseVxlanConf({ vni: 1, mtu: 1480 }), []), isCode(7));
});

Deno.test({
  name: "vxlan ADD programs one all-zero FDB entry per remote and follows the remote source",
  ignore: !isRoot,
  async fn() {
    let remotes = ["10.250.1.2", "10.250.1.3", "10.250.1.1"];
    const source: RemoteSource = { list: () => Promise.resolve(remotes) };
    const underlay = async (host: TestNetns) => {
      await addVethPair(host.name, "ppu0", "ppu1");
      await run("ip", "-n", host.name, "addr", "add", "10.250.1.1/24", "dev", "ppu0");
      await run("ip", "-n", host.name, "link", "set", "ppu0", "up");
    };
    await using t = await rig((o) => makeVxlan({ ...o, remotes: source }), underlay);
    const { host, pod: pod1 } = t;
    await using pod2 = await tempNetns("c");
    const conf = {
      cniVersion: "1.0.0",
      name: "ppvx",
      type: "vxlan",
      vni: 77,
      local: "10.250.1.1",
      ipam: { type: "host-local", subnet: "10.251.77.0/24", dataDir: t.data },
    };
    const call = (command: "ADD" | "DEL" | "CHECK", netns: string, id: string, c: object = conf) =>
      t.call(command, c, { containerId: id, netns, ifname: "eth0" });
    const fdb = async () =>
      [...(await run("bridge", "-n", host.name, "fdb", "show", "dev", "vx77"))
        .matchAll(/00:00:00:00:00:00 dst (\S+)/g)].map((m) => m[1]).sort();

    const res = await call("ADD", pod1.path, "v1");
    // Our own address (local) is never a replication target.
    assert.deepStrictEqual(await fdb(), ["10.250.1.2", "10.250.1.3"]);
    remotes = ["10.250.1.3", "10.250.1.4"];
    await call("ADD", pod2.path, "v2");
    assert.deepStrictEqual(await fdb(), ["10.250.1.3", "10.250.1.4"]);

    const withPrev = { ...conf, prevResult: res };
    await call("CHECK", pod1.path, "v1", withPrev);
    await run("ip", "-n", host.name, "link", "set", "vx77", "nomaster");
    await assert.rejects(call("CHECK", pod1.path, "v1", withPrev), /not a port/);
    for (const [ns, id] of [[pod1.path, "v1"], [pod2.path, "v2"]]) {
      await call("DEL", ns, id);
      await call("DEL", ns, id);
    }
    assert.equal(await linkExists(pod1.name, "eth0"), false);
    assert.ok(await linkExists(host.name, "vx77"), "the segment stays for other pods");
  },
});

Deno.test({
  name: "a failed vxlan ADD leaves neither the bridge nor the VXLAN device it created",
  ignore: !isRoot,
  async fn() {
    const underlay = async (host: TestNetns) => {
      await addVethPair(host.name, "ppu0", "ppu1");
      await run("ip", "-n", host.name, "addr", "add", "10.250.2.1/24", "dev", "ppu0");
      await run("ip", "-n", host.name, "link", "set", "ppu0", "up");
    };
    await using t = await rig((o) => makeVxlan(o), underlay);
    const conf = {
      cniVersion: "1.0.0",
      name: "ppvx",
      type: "vxlan",
      vni: 78,
      local: "10.250.2.1",
      remotes: ["10.250.2.2"],
      ipam: { type: "no-such-ipam" },
    };
    await assert.rejects(
      t.call("ADD", conf, { containerId: "v9", netns: t.pod.path, ifname: "eth0" }),
    );
    assert.equal(await linkExists(t.host.name, "vxbr78"), false, "no bridge left");
    assert.equal(await linkExists(t.host.name, "vx78"), false, "no vxlan device left");
    assert.equal(await linkExists(t.pod.name, "eth0"), false);
  },
});
