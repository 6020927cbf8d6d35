import assert from "node:assert/strict";
import { ipJson, isRoot, linkExists, ppName, tempNetns } from "../tests/testutils.ts";
import { throwsKind } from "./_testing.ts";
import { Netlink, NetNs } from "./mod.ts";

const opts = { ignore: !isRoot };

type IpLink = Record<string, unknown> & {
  flags: string[];
  linkinfo?: {
    info_kind?: string;
    info_data?: Record<string, unknown>;
    info_slave_data?: Record<string, unknown>;
  };
};

async function ipLink(ns: string, name: string, details = false): Promise<IpLink> {
  const args = details ? ["-d", "link", "show", "dev", name] : ["link", "show", "dev", name];
  return (await ipJson(ns, ...args))[0] as IpLink;
}

Deno.test("getLink() reads lo and returns null for a missing link", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const lo = nl.getLink("lo")!;
  assert.equal(lo.index, 1);
  assert.equal(lo.name, "lo");
  assert.equal(lo.mac, "00:00:00:00:00:00");
  assert.equal(lo.up, true); // tempNetns() brings lo up
  assert.deepEqual(nl.getLink(1)?.name, "lo");
  assert.equal(nl.getLink("ppmissing"), null);
  assert.equal(nl.getLink(4242), null);
  throwsKind(() => nl.requireLink("ppmissing"), "notfound");
});

Deno.test("addBridge() creates a bridge with mtu and mac", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const name = ppName("br");
  nl.addBridge({ name, mtu: 1400, mac: "02:00:00:aa:bb:cc" });
  const ip = await ipLink(ns.name, name, true);
  assert.equal(ip.mtu, 1400);
  assert.equal(ip.address, "02:00:00:aa:bb:cc");
  assert.equal(ip.linkinfo?.info_kind, "bridge");
  const info = nl.requireLink(name);
  assert.equal(info.kind, "bridge");
  assert.equal(info.mtu, 1400);
  assert.equal(info.mac, "02:00:00:aa:bb:cc");
  assert.equal(info.index, ip.ifindex);
});

Deno.test("addBridge() with vlanFiltering sets it, or is notsupported", opts, async (t) => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const name = ppName("br");
  try {
    nl.addBridge({ name, vlanFiltering: true });
  } catch (e) {
    // This machine's kernel is built without CONFIG_BRIDGE_VLAN_FILTERING.
    assert.equal((e as { kind?: string }).kind, "notsupported", String(e));
    assert.equal(await linkExists(ns.name, name), false);
    await t.step({
      name: `SKIPPED vlan_filtering check: ${(e as Error).message}`,
      ignore: true,
      fn() {},
    });
    return;
  }
  const ip = await ipLink(ns.name, name, true);
  assert.equal(ip.linkinfo?.info_data?.vlan_filtering, 1);
});

Deno.test("adding a link whose name exists throws kind exists", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const name = ppName("br");
  nl.addBridge({ name });
  const err = throwsKind(() => nl.addBridge({ name }), "exists");
  assert.ok(err.message.includes(name), err.message);
  assert.equal(err.code, 6); // NLE_EXIST
  assert.equal(err.errno, 17); // EEXIST
  throwsKind(() => nl.addVeth({ name, peerName: ppName("p") }), "exists");
});

Deno.test("addVeth() creates the peer directly in another netns", opts, async () => {
  await using host = await tempNetns("h");
  await using ctr = await tempNetns("c");
  using nl = Netlink.open(host.path);
  using ctrNs = NetNs.open(ctr.path);
  using nlCtr = Netlink.open(ctrNs);
  // Give the peer an ifindex that differs from the host end's: the kernel omits IFLA_LINK
  // when a veth's peer has the same ifindex (in another netns).
  nlCtr.addBridge({ name: ppName("pad") });
  const name = ppName("v");
  const peerName = ppName("p");
  nl.addVeth({
    name,
    peerName,
    peerNs: ctrNs,
    mtu: 1450,
    mac: "02:00:00:00:00:01",
    peerMac: "02:00:00:00:00:02",
    group: 7,
    peerGroup: 8,
  });
  const hostEnd = await ipLink(host.name, name);
  const peer = await ipLink(ctr.name, peerName);
  assert.equal(await linkExists(host.name, peerName), false);
  assert.equal(hostEnd.mtu, 1450);
  assert.equal(peer.mtu, 1450);
  assert.equal(hostEnd.address, "02:00:00:00:00:01");
  assert.equal(peer.address, "02:00:00:00:00:02");
  assert.equal(hostEnd.group, "7");
  assert.equal(peer.group, "8");
  const info = nl.requireLink(name);
  assert.equal(info.kind, "veth");
  assert.equal(info.group, 7);
  assert.equal(info.peerIndex, peer.ifindex);
  assert.equal(typeof info.linkNetnsId, "number"); // the peer lives in another netns
});

Deno.test(
  "peerIndex is right when the peer has the same ifindex in another netns",
  opts,
  async () => {
    await using host = await tempNetns("h");
    await using ctr = await tempNetns("c");
    using nl = Netlink.open(host.path);
    using ctrNs = NetNs.open(ctr.path);
    const [name, peerName] = [ppName("v"), ppName("p")];
    nl.addVeth({ name, peerName, peerNs: ctrNs });
    const hostEnd = await ipLink(host.name, name);
    const peer = await ipLink(ctr.name, peerName);
    assert.equal(hostEnd.ifindex, peer.ifindex); // both are the first link after lo
    assert.equal(nl.requireLink(name).peerIndex, peer.ifindex);
    using nlCtr = Netlink.open(ctrNs);
    assert.equal(nlCtr.requireLink(peerName).peerIndex, hostEnd.ifindex);
    // A bridge has no peer, whatever its ifindex.
    nl.addBridge({ name: ppName("br") });
    assert.equal(nl.listLinks().find((l) => l.kind === "bridge")?.peerIndex, undefined);
  },
);

Deno.test("addVeth() without peerNs puts both ends here", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const [a, b] = [ppName("a"), ppName("b")];
  nl.addVeth({ name: a, peerName: b });
  const ia = nl.requireLink(a);
  const ib = nl.requireLink(b);
  assert.equal(ia.peerIndex, ib.index);
  assert.equal(ib.peerIndex, ia.index);
  assert.equal(ia.linkNetnsId, undefined);
});

Deno.test(
  "deleteLink() deletes a veth with its peer; a missing one is notfound",
  opts,
  async () => {
    await using ns = await tempNetns();
    using nl = Netlink.open(ns.path);
    const [a, b] = [ppName("a"), ppName("b")];
    nl.addVeth({ name: a, peerName: b });
    nl.deleteLink(a);
    assert.equal(await linkExists(ns.name, a), false);
    assert.equal(await linkExists(ns.name, b), false);
    const err = throwsKind(() => nl.deleteLink(a), "notfound");
    assert.ok(err.message.includes(a), err.message);
    throwsKind(() => nl.deleteLink(4242), "notfound");
  },
);

Deno.test(
  "deleteLinkIfExists() deletes a link and answers false for a missing one",
  opts,
  async () => {
    await using ns = await tempNetns();
    using nl = Netlink.open(ns.path);
    const [a, b] = [ppName("a"), ppName("b")];
    nl.addVeth({ name: a, peerName: b });
    assert.equal(nl.deleteLinkIfExists(a), true);
    assert.equal(await linkExists(ns.name, b), false);
    assert.equal(nl.deleteLinkIfExists(a), false);
    assert.equal(nl.deleteLinkIfExists(4242), false);
  },
);

Deno.test("deleteGroup() deletes exactly the links of that group", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const names = Array.from({ length: 6 }, (_, i) => ppName(`g${i}`));
  // Three veth pairs: group 21 (both ends), group 22 (both ends), group 21 + default.
  nl.addVeth({ name: names[0], peerName: names[1], group: 21, peerGroup: 21 });
  nl.addVeth({ name: names[2], peerName: names[3], group: 22, peerGroup: 22 });
  const bridge = ppName("br");
  nl.addBridge({ name: bridge });
  nl.setGroup(bridge, 21);
  const keep = ppName("k");
  nl.addBridge({ name: keep });
  nl.deleteGroup(21);
  assert.equal(await linkExists(ns.name, names[0]), false);
  assert.equal(await linkExists(ns.name, names[1]), false);
  assert.equal(await linkExists(ns.name, bridge), false);
  assert.equal(await linkExists(ns.name, names[2]), true);
  assert.equal(await linkExists(ns.name, names[3]), true);
  assert.equal(await linkExists(ns.name, keep), true);
  assert.equal(await linkExists(ns.name, "lo"), true);
  throwsKind(() => nl.deleteGroup(21), "notfound");
  assert.throws(() => nl.deleteGroup(0), RangeError);
});

Deno.test(
  "setUp() / setDown() / setMtu() / setMac() / setPromisc() change the link",
  opts,
  async () => {
    await using ns = await tempNetns();
    using nl = Netlink.open(ns.path);
    const name = ppName("br");
    nl.addBridge({ name });
    nl.setUp(name);
    assert.equal(nl.requireLink(name).up, true);
    assert.ok((await ipLink(ns.name, name)).flags.includes("UP"));
    nl.setMtu(name, 1300);
    nl.setMac(name, "02:11:22:33:44:55");
    nl.setPromisc(name, true);
    let ip = await ipLink(ns.name, name);
    assert.equal(ip.mtu, 1300);
    assert.equal(ip.address, "02:11:22:33:44:55");
    assert.ok(ip.flags.includes("PROMISC"));
    nl.setPromisc(name, false);
    nl.setDown(name);
    ip = await ipLink(ns.name, name);
    assert.ok(!ip.flags.includes("PROMISC"));
    assert.ok(!ip.flags.includes("UP"));
    assert.equal(nl.requireLink(name).up, false);
    throwsKind(() => nl.setUp("ppmissing"), "notfound");
    throwsKind(() => nl.setMtu(4242, 1400), "notfound");
  },
);

Deno.test("rename() renames a link by name or index", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const [a, b, c] = [ppName("a"), ppName("b"), ppName("c")];
  nl.addBridge({ name: a });
  nl.addBridge({ name: c });
  const index = nl.requireLink(a).index;
  nl.rename(a, b);
  assert.equal(nl.requireLink(b).index, index);
  assert.equal(await linkExists(ns.name, a), false);
  assert.equal(await linkExists(ns.name, b), true);
  nl.rename(index, a);
  assert.equal(nl.requireLink(a).index, index);
  throwsKind(() => nl.rename(index, c), "exists");
  throwsKind(() => nl.rename("ppmissing", b), "notfound");
});

Deno.test("setMaster() enslaves to a bridge and null frees it", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const [br, a, b] = [ppName("br"), ppName("a"), ppName("b")];
  nl.addBridge({ name: br });
  nl.addVeth({ name: a, peerName: b });
  const brIndex = nl.requireLink(br).index;
  nl.setMaster(a, brIndex);
  assert.equal((await ipLink(ns.name, a)).master, br);
  assert.equal(nl.requireLink(a).master, brIndex);
  nl.setMaster(a, null);
  assert.equal((await ipLink(ns.name, a)).master, undefined);
  assert.equal(nl.requireLink(a).master, undefined);
});

Deno.test("setBridgePort() sets hairpin and isolated on a bridge port", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const [br, a, b] = [ppName("br"), ppName("a"), ppName("b")];
  nl.addBridge({ name: br });
  nl.addVeth({ name: a, peerName: b });
  nl.setMaster(a, nl.requireLink(br).index);
  nl.setBridgePort(a, { hairpin: true, isolated: true });
  let port = (await ipLink(ns.name, a, true)).linkinfo?.info_slave_data;
  assert.equal(port?.hairpin, true);
  assert.equal(port?.isolated, true);
  nl.setBridgePort(nl.requireLink(a).index, { hairpin: false });
  port = (await ipLink(ns.name, a, true)).linkinfo?.info_slave_data;
  assert.equal(port?.hairpin, false);
  assert.equal(port?.isolated, true);
  throwsKind(() => nl.setBridgePort("ppmissing", { hairpin: true }), "notfound");
});

Deno.test("setGroup() sets the link group", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const name = ppName("br");
  nl.addBridge({ name });
  nl.setGroup(name, 99);
  assert.equal((await ipLink(ns.name, name)).group, "99");
  assert.equal(nl.requireLink(name).group, 99);
});

Deno.test("setNetns() moves a link into another netns", opts, async () => {
  await using a = await tempNetns("a");
  await using b = await tempNetns("b");
  using nl = Netlink.open(a.path);
  using nsB = NetNs.open(b.path);
  const [v, p] = [ppName("v"), ppName("p")];
  nl.addVeth({ name: v, peerName: p });
  nl.setNetns(p, nsB);
  assert.equal(await linkExists(a.name, p), false);
  assert.equal(await linkExists(b.name, p), true);
  using nlB = Netlink.open(nsB);
  assert.equal(nlB.requireLink(p).peerIndex, nl.requireLink(v).index);
});

Deno.test("listLinks() lists every link of the netns", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const [a, b] = [ppName("a"), ppName("b")];
  nl.addVeth({ name: a, peerName: b });
  const mine = nl.listLinks().map((l) => l.name).sort();
  const theirs = (await ipJson(ns.name, "link", "show")).map((l) => l.ifname as string).sort();
  assert.deepEqual(mine, theirs);
  assert.deepEqual(mine, ["lo", a, b].sort());
});
