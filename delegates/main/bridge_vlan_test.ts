import assert from "node:assert/strict";
import { CniError } from "../../conf/errors.ts";
import {
  type BridgeVlanOptions,
  type LinkInfo,
  type LinkRef,
  NetlinkError,
} from "../../ffi/mod.ts";
import { makeBridge, parseBridgeConf, portVlanPlan } from "./bridge.ts";
import {
  applyPortVlans,
  enableVlanFiltering,
  requireVlanGateway,
  type VlanNetlink,
} from "./_bridge_vlan.ts";
import { ipJson, isRoot, linkExists, run } from "../../tests/testutils.ts";
import { type Any, isCode, rig } from "../_shared/testing.ts";

const port = { index: 42, name: "veth0001" } as LinkInfo;
const bridgeLink = { index: 7, name: "ppbr0" } as LinkInfo;

/** A VlanNetlink that records each call; `fail` makes every call throw it. */
function recorder(fail?: Error): { nl: VlanNetlink; calls: string[] } {
  const calls: string[] = [];
  const hit = (s: string) => {
    calls.push(s);
    if (fail) throw fail;
  };
  const nl: VlanNetlink = {
    setBridgeVlanFiltering: (b: LinkRef, on: boolean) => hit(`filtering #${b} ${on}`),
    bridgeVlanAdd: (p: LinkRef, o: BridgeVlanOptions) =>
      hit(`add #${p} vid ${o.vid}${o.pvid ? " pvid" : ""}${o.untagged ? " untagged" : ""}`),
    bridgeVlanDel: (p: LinkRef, vid: number) => hit(`del #${p} vid ${vid}`),
  };
  return { nl, calls };
}

const notSupported = () =>
  new NetlinkError("add VLAN 10 on #42", -10, "notsupported", "Operation not supported", 95);

Deno.test("parseBridgeConf() keeps the default VLAN unless preserveDefaultVlan is false", () => {
  assert.equal(parseBridgeConf({}).preserveDefaultVlan, true);
  assert.equal(parseBridgeConf({ preserveDefaultVlan: false }).preserveDefaultVlan, false);
  assert.throws(() => parseBridgeConf({ preserveDefaultVlan: "no" }), isCode(7));
});

Deno.test("parseBridgeConf() refuses VLAN ids outside the reference's ranges with code 7", () => {
  for (const bad of [{ vlan: -1 }, { vlan: 4095 }, { vlanTrunk: [{ id: 0 }] }]) {
    assert.throws(() => parseBridgeConf(bad), isCode(7), JSON.stringify(bad));
  }
  assert.throws(() => parseBridgeConf({ vlanTrunk: [{ minID: 1, maxID: 4095 }] }), isCode(7));
  assert.throws(() => parseBridgeConf({ vlanTrunk: { id: 3 } }), isCode(7));
});

Deno.test("without vlan or vlanTrunk the port gets no VLAN request at all", () => {
  assert.deepEqual(portVlanPlan(parseBridgeConf({ preserveDefaultVlan: false })), []);
});

Deno.test("vlan makes the port an access port: PVID and untagged, VLAN 1 kept by default", () => {
  assert.deepEqual(portVlanPlan(parseBridgeConf({ vlan: 100 })), [
    { op: "add", vid: 100, pvid: true, untagged: true },
  ]);
});

Deno.test("preserveDefaultVlan false removes VLAN 1 from the port before adding its own", () => {
  const c = parseBridgeConf({ vlan: 100, preserveDefaultVlan: false });
  assert.deepEqual(portVlanPlan(c), [
    { op: "del", vid: 1 },
    { op: "add", vid: 100, pvid: true, untagged: true },
  ]);
});

Deno.test("vlanTrunk makes the port a trunk: every id tagged, in order", () => {
  const c = parseBridgeConf({
    vlanTrunk: [{ id: 30 }, { minID: 10, maxID: 12 }],
    preserveDefaultVlan: false,
  });
  assert.deepEqual(portVlanPlan(c).map((s) => `${s.op} ${s.vid}`), [
    "del 1",
    "add 10",
    "add 11",
    "add 12",
    "add 30",
  ]);
  assert.ok(portVlanPlan(c).every((s) => s.op === "del" || (!s.pvid && !s.untagged)));
});

Deno.test("applyPortVlans() sends the plan's requests on the host veth's ifindex", () => {
  const { nl, calls } = recorder();
  applyPortVlans(nl, port, parseBridgeConf({ vlan: 5, preserveDefaultVlan: false }));
  assert.deepEqual(calls, ["del #42 vid 1", "add #42 vid 5 pvid untagged"]);
  const trunk = recorder();
  applyPortVlans(trunk.nl, port, parseBridgeConf({ vlanTrunk: [{ id: 8 }, { id: 9 }] }));
  assert.deepEqual(trunk.calls, ["add #42 vid 8", "add #42 vid 9"]);
});

Deno.test("enableVlanFiltering() switches filtering on for the bridge's ifindex", () => {
  const { nl, calls } = recorder();
  enableVlanFiltering(nl, bridgeLink, parseBridgeConf({ vlan: 5 }));
  assert.deepEqual(calls, ["filtering #7 true"]);
});

Deno.test("a kernel without VLAN filtering is code 2 naming the field that was set", () => {
  const { nl } = recorder(notSupported());
  for (const [raw, field] of [[{ vlan: 5 }, "vlan"], [{ vlanTrunk: [{ id: 9 }] }, "vlanTrunk"]]) {
    const c = parseBridgeConf(raw as Record<string, unknown>);
    for (
      const step of [
        () => applyPortVlans(nl, port, c),
        () => enableVlanFiltering(nl, bridgeLink, c),
      ]
    ) {
      const want =
        `Field "${field}" needs bridge VLAN filtering, which this kernel does not support`;
      assert.throws(
        step,
        (err) => err instanceof CniError && err.code === 2 && err.message === want,
      );
    }
  }
});

Deno.test("other kernel failures of a VLAN step are code 101 naming the port", () => {
  const busy = new NetlinkError("x", -1, "other", "Invalid argument", 22);
  const { nl } = recorder(busy);
  assert.throws(
    () => applyPortVlans(nl, port, parseBridgeConf({ vlan: 5 })),
    (e) => isCode(101)(e) && /Cannot add VLAN 5 to "veth0001"/.test((e as Error).message),
  );
});

Deno.test("vlan with isGateway is refused with code 2 until the VLAN gateway veth exists", () => {
  const ipam = { type: "host-local" };
  assert.throws(
    () => requireVlanGateway(parseBridgeConf({ vlan: 5, isGateway: true, ipam })),
    (e) => isCode(2)(e) && /"vlan" with "isGateway"/.test((e as Error).message),
  );
  requireVlanGateway(parseBridgeConf({ vlan: 5, ipam }));
  requireVlanGateway(parseBridgeConf({ vlanTrunk: [{ id: 5 }], isGateway: true, ipam }));
});

/** Host links other than lo (the bridge included). */
async function hostLinks(ns: string): Promise<string[]> {
  return (await ipJson(ns, "link", "show")).map((l) => l.ifname as string)
    .filter((n) => n !== "lo").sort();
}

function vlanConf(data: string, extra: object) {
  return {
    cniVersion: "1.0.0",
    name: "ppnet",
    type: "bridge",
    bridge: "ppbr0",
    isGateway: true,
    ipam: { type: "host-local", subnet: "10.250.9.0/24", dataDir: data },
    ...extra,
  };
}

/** Reports a kernel that lacks a feature as an ignored step (never a pass). */
async function skipStep(t: Deno.TestContext, what: string, e: unknown): Promise<void> {
  await t.step({ name: `SKIPPED ${what}: ${(e as Error).message}`, ignore: true, fn() {} });
}

Deno.test({
  name: "bridge ADD with vlan either sets the port VLANs or fails with code 2 leaving nothing",
  ignore: !isRoot,
  async fn(t) {
    await using r = await rig(makeBridge);
    const env = { containerId: "ctrv1", netns: r.pod.path, ifname: "eth0" };
    const conf = vlanConf(r.data, { vlan: 100, preserveDefaultVlan: false, isGateway: false });
    let res: Any;
    try {
      res = await r.call("ADD", conf, env);
    } catch (e) {
      assert.ok(isCode(2)(e), String(e));
      assert.match((e as Error).message, /^Field "vlan" needs bridge VLAN filtering/);
      assert.deepEqual(await hostLinks(r.host.name), [], "no bridge and no veth are left");
      assert.equal(await linkExists(r.pod.name, "eth0"), false);
      const leases = [...Deno.readDirSync(r.data)].length;
      assert.equal(leases, 0, "IPAM was never called");
      await skipStep(t, "port VLANs (kernel has no bridge VLAN filtering)", e);
      return;
    }
    const out = await run(
      "bridge",
      "-n",
      r.host.name,
      "-j",
      "vlan",
      "show",
      "dev",
      res.interfaces[1].name,
    );
    const vlans = JSON.parse(out)[0].vlans as Array<{ vlan: number; flags?: string[] }>;
    assert.deepEqual(vlans.map((v) => v.vlan), [100]);
    await r.call("DEL", conf, env);
  },
});

Deno.test({
  name: "bridge ADD with vlanTrunk on an existing bridge fails with code 2 and keeps the bridge",
  ignore: !isRoot,
  async fn(t) {
    await using r = await rig(makeBridge, async (h) => {
      await run("ip", "-n", h.name, "link", "add", "ppbr0", "type", "bridge");
    });
    const env = { containerId: "ctrv2", netns: r.pod.path, ifname: "eth0" };
    const conf = vlanConf(r.data, { vlanTrunk: [{ minID: 10, maxID: 12 }] });
    try {
      await r.call("ADD", conf, env);
    } catch (e) {
      assert.ok(isCode(2)(e), String(e));
      assert.match((e as Error).message, /^Field "vlanTrunk" needs bridge VLAN filtering/);
      assert.deepEqual(await hostLinks(r.host.name), ["ppbr0"], "only the admin's bridge");
      assert.equal(await linkExists(r.pod.name, "eth0"), false);
      assert.equal([...Deno.readDirSync(r.data)].length, 0);
      await skipStep(t, "trunk VLANs (kernel has no bridge VLAN filtering)", e);
      return;
    }
    await r.call("DEL", conf, env);
  },
});

Deno.test({
  name: "a failed bridge ADD removes the bridge it created but not one with other ports",
  ignore: !isRoot,
  async fn() {
    await using r = await rig(makeBridge);
    const env = { containerId: "ctrv3", netns: r.pod.path, ifname: "eth0" };
    const bad = vlanConf(r.data, { ipam: { type: "pp-no-such-ipam" } });
    await assert.rejects(r.call("ADD", bad, env));
    assert.deepEqual(await hostLinks(r.host.name), [], "the bridge made for this ADD is gone");
    const good = vlanConf(r.data, {});
    const holder = { ...env, containerId: "holder", ifname: "eth9" };
    await r.call("ADD", good, holder);
    await assert.rejects(r.call("ADD", bad, env));
    assert.ok(await linkExists(r.host.name, "ppbr0"), "a bridge in use stays");
    await r.call("DEL", good, holder);
  },
});

Deno.test({
  name: "bridge ADD with vlan and isGateway is refused with code 2 before the bridge is touched",
  ignore: !isRoot,
  async fn() {
    await using r = await rig(makeBridge);
    const env = { containerId: "ctrv4", netns: r.pod.path, ifname: "eth0" };
    const conf = vlanConf(r.data, { vlan: 100 });
    const refused = (e: unknown) => isCode(2)(e) && /"vlan" with "isGateway"/.test(String(e));
    await assert.rejects(r.call("ADD", conf, env), refused);
    assert.deepEqual(await hostLinks(r.host.name), [], "no bridge was created");
    await run("ip", "-n", r.host.name, "link", "add", "ppbr0", "type", "bridge");
    await assert.rejects(r.call("ADD", conf, env), refused);
    const br: Any = (await ipJson(r.host.name, "-d", "link", "show", "ppbr0"))[0];
    assert.equal(br.linkinfo?.info_data?.vlan_filtering ?? 0, 0, "filtering left off");
    assert.equal([...Deno.readDirSync(r.data)].length, 0);
  },
});
