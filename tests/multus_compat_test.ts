/**
 * Multus's and CNI-Genie's annotation semantics end to end, through the real dispatcher and
 * built-in delegates in a real netns: `default-route` from every attachment that asks (and
 * two gateways of one family refused before anything is made), MACs in every net.ParseMAC
 * form reaching the kernel, Genie's `name@ifname`.
 */
import assert from "node:assert/strict";
import { ipJson, isRoot } from "./testutils.ts";
import { callCni, createRig, type Rig } from "./_rel_fixture.ts";

const ANN = "io.kubernetes.cri.pod-annotations";

function withAnnotations(rig: Rig, annotations: Record<string, string>, extra = {}): string {
  return rig.podplexConf({
    clusterNetwork: "default/net-a",
    runtimeConfig: { [ANN]: annotations },
    ...extra,
  });
}

async function routes(ns: string, family: "-4" | "-6") {
  return (await ipJson(ns, family, "route", "show", "default")).map((r) => [r.gateway, r.dev]);
}

async function linkMac(ns: string, dev: string): Promise<string> {
  const [l] = await ipJson(ns, "link", "show", "dev", dev);
  return l.address as string;
}

Deno.test({
  name: "default-route applies from every attachment that asks, one family each",
  ignore: !isRoot,
  async fn() {
    await using rig = await createRig("dr");
    rig.bridgeNetwork("net-a", 20, { isDefaultGateway: true });
    rig.bridgeNetwork("net-b", 21);
    rig.bridgeNetwork("net-c", 22, {
      ipam: { type: "host-local", subnet: "fd02:202:22::/64", dataDir: rig.dataDir },
    });
    const conf = withAnnotations(rig, {
      "k8s.v1.cni.cncf.io/networks": JSON.stringify([
        { name: "net-b", "default-route": ["10.202.21.1"] },
        { name: "net-c", "default-route": ["fd02:202:22::1"] },
      ]),
    });
    const add = await callCni(rig.env("ADD", "pprdr1"), conf);
    assert.equal(add.code, 0, add.stdout);
    assert.deepEqual(await routes(rig.netns.name, "-4"), [["10.202.21.1", "net1"]]);
    assert.deepEqual(await routes(rig.netns.name, "-6"), [["fd02:202:22::1", "net2"]]);
    const res = add.json as { routes: Array<{ dst: string; gw: string }> };
    const defaults = res.routes.filter((r) => r.dst === "0.0.0.0/0" || r.dst === "::/0");
    assert.deepEqual(defaults.map((r) => r.gw).sort(), ["10.202.21.1", "fd02:202:22::1"]);
    assert.equal((await callCni(rig.env("DEL", "pprdr1"), conf)).code, 0);
    assert.deepEqual(await rig.leftovers(), []);
  },
});

Deno.test({
  name: "two default gateways of one family across attachments are code 7, nothing made",
  ignore: !isRoot,
  async fn() {
    await using rig = await createRig("dr2");
    rig.bridgeNetwork("net-a", 23);
    rig.bridgeNetwork("net-b", 24);
    rig.bridgeNetwork("net-d", 25);
    const conf = withAnnotations(rig, {
      "k8s.v1.cni.cncf.io/networks": JSON.stringify([
        { name: "net-b", "default-route": ["10.202.24.1"] },
        { name: "net-d", "default-route": ["10.202.25.1"] },
      ]),
    });
    const add = await callCni(rig.env("ADD", "pprdr2"), conf);
    assert.equal(add.json.code, 7);
    assert.match(
      String(add.json.msg),
      /two IPv4 default gateways.*"10\.202\.24\.1".*"10\.202\.25\.1"/,
    );
    assert.deepEqual(await rig.leftovers(), []);
  },
});

Deno.test({
  name: "annotation MACs in hyphen and dotted form reach the kernel; an empty mac is absent",
  ignore: !isRoot,
  async fn() {
    await using rig = await createRig("mac");
    rig.bridgeNetwork("net-a", 26);
    rig.bridgeNetwork("net-b", 27);
    rig.bridgeNetwork("net-d", 28);
    const conf = withAnnotations(rig, {
      "k8s.v1.cni.cncf.io/networks": JSON.stringify([
        { name: "net-b", mac: "02-00-00-CA-FE-01" },
        { name: "net-d", mac: "0200.00ca.fe02" },
        { name: "net-b", interface: "net9", mac: "" },
      ]),
    });
    const add = await callCni(rig.env("ADD", "pprmac1"), conf);
    assert.equal(add.code, 0, add.stdout);
    assert.equal(await linkMac(rig.netns.name, "net1"), "02:00:00:ca:fe:01");
    assert.equal(await linkMac(rig.netns.name, "net2"), "02:00:00:ca:fe:02");
    assert.notEqual(await linkMac(rig.netns.name, "net9"), "");
    assert.equal((await callCni(rig.env("DEL", "pprmac1"), conf)).code, 0);
    assert.deepEqual(await rig.leftovers(), []);
  },
});

Deno.test({
  name: "Genie's cni annotation with name@ifname gives each network its interface",
  ignore: !isRoot,
  async fn() {
    await using rig = await createRig("gen");
    rig.bridgeNetwork("net-a", 29);
    rig.bridgeNetwork("net-b", 30);
    const conf = withAnnotations(rig, { cni: "net-b@data0, net-a" });
    const add = await callCni(rig.env("ADD", "pprgen1"), conf);
    assert.equal(add.code, 0, add.stdout);
    const addrs = await ipJson(rig.netns.name, "-4", "addr", "show");
    const byDev = Object.fromEntries(
      addrs.map((l) => [l.ifname, (l.addr_info as Array<{ local: string }>)[0]?.local]),
    );
    assert.equal(byDev.eth0, "10.202.29.2");
    assert.equal(byDev.data0, "10.202.30.2");
    assert.equal((await callCni(rig.env("DEL", "pprgen1"), conf)).code, 0);
    assert.deepEqual(await rig.leftovers(), []);
  },
});
