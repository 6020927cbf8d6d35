import assert from "node:assert/strict";
import { ipJson, isRoot, linkExists, ppName, tempNetns } from "../tests/testutils.ts";
import { throwsKind } from "./_testing.ts";
import { Netlink, NetlinkError, NetNs } from "./mod.ts";

const opts = { ignore: !isRoot };

type Details = {
  mtu: number;
  address: string;
  link?: string;
  linkinfo: { info_kind: string; info_data: Record<string, unknown> };
};

async function details(ns: string, name: string): Promise<Details> {
  return (await ipJson(ns, "-d", "link", "show", "dev", name))[0] as unknown as Details;
}

/** Reports a kernel that lacks a link kind as an ignored step (never a pass). */
async function skipStep(t: Deno.TestContext, what: string, e: unknown): Promise<void> {
  await t.step({ name: `SKIPPED ${what}: ${(e as Error).message}`, ignore: true, fn() {} });
}

Deno.test("addVxlan() creates a VXLAN device with every option set", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const [under, peer, name] = [ppName("u"), ppName("p"), ppName("vx")];
  nl.addVeth({ name: under, peerName: peer });
  const dev = nl.requireLink(under).index;
  nl.addVxlan({
    name,
    vni: 4242,
    port: 4789,
    local: "10.1.1.1",
    group: "10.2.2.2",
    dev,
    learning: false,
    ttl: 5,
    mtu: 1450,
  });
  const d = await details(ns.name, name);
  assert.equal(d.linkinfo.info_kind, "vxlan");
  assert.equal(d.mtu, 1450);
  const data = d.linkinfo.info_data;
  assert.equal(data.id, 4242);
  assert.equal(data.port, 4789);
  assert.equal(data.local, "10.1.1.1");
  assert.equal(data.remote, "10.2.2.2");
  assert.equal(data.link, under);
  assert.equal(data.learning, false);
  assert.equal(data.ttl, 5);
  assert.equal(nl.requireLink(name).kind, "vxlan");
});

Deno.test("addVxlan() takes IPv6 endpoints and the kernel's default port", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const name = ppName("vx");
  nl.addVxlan({ name, vni: 7, local: "fd00::1", group: "ff05::100", dev: 1 });
  const data = (await details(ns.name, name)).linkinfo.info_data;
  assert.equal(data.id, 7);
  assert.equal(data.local6, "fd00::1");
  assert.equal(data.group6, "ff05::100");
  assert.equal(data.port, 8472); // Linux's historical default when no port is given
  assert.equal(data.learning, true);
});

Deno.test("addMacvlan() creates the macvlan directly in another netns", opts, async () => {
  await using host = await tempNetns("h");
  await using ctr = await tempNetns("c");
  using nl = Netlink.open(host.path);
  using ctrNs = NetNs.open(ctr.path);
  using nlCtr = Netlink.open(ctrNs);
  // An ifindex in the container that differs from the master's: the kernel omits
  // IFLA_LINK when the lower device has the link's own ifindex (in another netns).
  nlCtr.addBridge({ name: ppName("pad") });
  const [br, name] = [ppName("br"), ppName("mv")];
  nl.addBridge({ name: br, mtu: 1500 });
  const master = nl.requireLink(br).index;
  nl.addMacvlan({ name, master, mode: "private", mtu: 1400, mac: "02:00:00:00:0a:0b", ns: ctrNs });
  assert.equal(await linkExists(host.name, name), false);
  const d = await details(ctr.name, name);
  assert.equal(d.linkinfo.info_kind, "macvlan");
  assert.equal(d.linkinfo.info_data.mode, "private");
  assert.equal(d.mtu, 1400);
  assert.equal(d.address, "02:00:00:00:0a:0b");
  const info = nlCtr.requireLink(name);
  assert.equal(info.kind, "macvlan");
  assert.equal(info.peerIndex, master); // IFLA_LINK: the lower device
});

Deno.test("addMacvlan() modes bridge, vepa and passthru reach the kernel", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  for (const mode of ["bridge", "vepa", "passthru"] as const) {
    const br = ppName("br");
    nl.addBridge({ name: br });
    const name = ppName("mv");
    nl.addMacvlan({ name, master: nl.requireLink(br).index, mode });
    assert.equal((await details(ns.name, name)).linkinfo.info_data.mode, mode);
  }
});

Deno.test("addMacvlan() on a missing master throws kind notfound", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  throwsKind(() => nl.addMacvlan({ name: ppName("mv"), master: 4242, mode: "bridge" }), "notfound");
});

Deno.test(
  "addIpvlan() creates an ipvlan, or is notsupported without the module",
  opts,
  async (t) => {
    await using ns = await tempNetns();
    using nl = Netlink.open(ns.path);
    const [br, name] = [ppName("br"), ppName("iv")];
    nl.addBridge({ name: br });
    const master = nl.requireLink(br).index;
    try {
      nl.addIpvlan({ name, master, mode: "l3", mtu: 1400 });
    } catch (e) {
      assert.ok(e instanceof NetlinkError, String(e));
      assert.equal(e.kind, "notsupported", e.message);
      assert.equal(await linkExists(ns.name, name), false);
      await skipStep(t, "ipvlan (kernel has no ipvlan module)", e);
      return;
    }
    const d = await details(ns.name, name);
    assert.equal(d.linkinfo.info_kind, "ipvlan");
    assert.equal(d.linkinfo.info_data.mode, "l3");
  },
);

Deno.test(
  "addDummy() creates a dummy link, or is notsupported without the module",
  opts,
  async (t) => {
    await using ns = await tempNetns();
    using nl = Netlink.open(ns.path);
    const name = ppName("d");
    try {
      nl.addDummy({ name, mtu: 1300 });
    } catch (e) {
      assert.ok(e instanceof NetlinkError, String(e));
      assert.equal(e.kind, "notsupported", e.message);
      await skipStep(t, "dummy (kernel has no dummy module)", e);
      return;
    }
    const d = await details(ns.name, name);
    assert.equal(d.linkinfo.info_kind, "dummy");
    assert.equal(d.mtu, 1300);
  },
);

Deno.test("a malformed MAC address is refused before reaching the kernel", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const name = ppName("br");
  assert.throws(() => nl.addBridge({ name, mac: "02:00:zz:00:00:01" }), /Invalid MAC address/);
  assert.equal(await linkExists(ns.name, name), false);
});
