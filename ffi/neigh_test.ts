import assert from "node:assert/strict";
import { ipJson, isRoot, ppName, run, tempNetns } from "../tests/testutils.ts";
import { throwsKind } from "./_testing.ts";
import { Netlink } from "./mod.ts";

const opts = { ignore: !isRoot };

type BridgeFdb = { mac: string; dst?: string; flags: string[]; state: string };

async function bridgeFdb(ns: string, dev: string): Promise<BridgeFdb[]> {
  const text = await run("bridge", "-j", "-n", ns, "fdb", "show", "dev", dev);
  return text.trim() ? JSON.parse(text) : [];
}

/** A VXLAN device as flannel makes it (learning off), up; returns name and index. */
function vxlan(nl: Netlink, tag = "vx"): { name: string; index: number } {
  const name = ppName(tag);
  nl.addVxlan({ name, vni: 1, port: 4789, local: "10.1.1.1", learning: false });
  nl.setUp(name);
  return { name, index: nl.requireLink(name).index };
}

const ZERO = "00:00:00:00:00:00";

Deno.test(
  "addFdb() with append adds several all-zero entries (head-end replication)",
  opts,
  async () => {
    await using ns = await tempNetns();
    using nl = Netlink.open(ns.path);
    const vx = vxlan(nl);
    nl.addFdb({ dev: vx.index, mac: ZERO, dst: "10.2.2.2", append: true });
    nl.addFdb({ dev: vx.index, mac: ZERO, dst: "10.2.2.3", append: true });
    const theirs = (await bridgeFdb(ns.name, vx.name)).filter((e) => e.mac === ZERO);
    assert.deepEqual(theirs.map((e) => e.dst).sort(), ["10.2.2.2", "10.2.2.3"]);
    assert.ok(theirs.every((e) => e.state === "permanent" && e.flags.includes("self")));
    const mine = nl.listFdb(vx.index).filter((e) => e.mac === ZERO);
    assert.deepEqual(mine.map((e) => e.dst).sort(), ["10.2.2.2", "10.2.2.3"]);
    assert.ok(mine.every((e) => e.dev === vx.index));
  },
);

Deno.test("addFdb() adds a static remote; a duplicate without append is exists", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const vx = vxlan(nl);
  nl.addFdb({ dev: vx.index, mac: "02:00:00:00:00:09", dst: "10.3.3.3", permanent: true });
  const e = (await bridgeFdb(ns.name, vx.name)).find((x) => x.mac === "02:00:00:00:00:09");
  assert.equal(e?.dst, "10.3.3.3");
  assert.equal(e?.state, "permanent");
  throwsKind(
    () => nl.addFdb({ dev: vx.index, mac: "02:00:00:00:00:09", dst: "10.3.3.3" }),
    "exists",
  );
});

Deno.test("addFdb() with permanent false adds an entry that is not permanent", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const vx = vxlan(nl);
  nl.addFdb({ dev: vx.index, mac: "02:00:00:00:00:0a", dst: "10.3.3.4", permanent: false });
  const e = (await bridgeFdb(ns.name, vx.name)).find((x) => x.mac === "02:00:00:00:00:0a");
  assert.equal(e?.dst, "10.3.3.4");
  assert.notEqual(e?.state, "permanent");
});

Deno.test("delFdb() deletes the entry with that dst only", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const vx = vxlan(nl);
  nl.addFdb({ dev: vx.index, mac: ZERO, dst: "10.2.2.2", append: true });
  nl.addFdb({ dev: vx.index, mac: ZERO, dst: "10.2.2.3", append: true });
  nl.delFdb({ dev: vx.index, mac: ZERO, dst: "10.2.2.2" });
  const left = (await bridgeFdb(ns.name, vx.name)).filter((e) => e.mac === ZERO);
  assert.deepEqual(left.map((e) => e.dst), ["10.2.2.3"]);
  nl.delFdb({ dev: vx.index, mac: ZERO, dst: "10.2.2.3" });
  assert.deepEqual(nl.listFdb(vx.index).filter((e) => e.mac === ZERO), []);
  // (While the MAC still has other remotes the kernel accepts deleting an absent one.)
  throwsKind(() => nl.delFdb({ dev: vx.index, mac: ZERO, dst: "10.2.2.3" }), "notfound");
});

Deno.test("addFdb() with self false programs a bridge port's master", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const [br, a, b] = [ppName("br"), ppName("a"), ppName("b")];
  nl.addBridge({ name: br });
  nl.addVeth({ name: a, peerName: b });
  const port = nl.requireLink(a).index;
  nl.setMaster(port, nl.requireLink(br).index);
  nl.addFdb({ dev: port, mac: "02:00:00:00:00:0b", self: false });
  const e = (await bridgeFdb(ns.name, a)).find((x) => x.mac === "02:00:00:00:00:0b");
  assert.ok(e, "entry in the bridge's table");
  assert.ok(!e.flags.includes("self"));
  assert.ok(nl.listFdb(port).some((x) => x.mac === "02:00:00:00:00:0b"));
  nl.delFdb({ dev: port, mac: "02:00:00:00:00:0b", self: false });
  const gone = (await bridgeFdb(ns.name, a)).find((x) => x.mac === "02:00:00:00:00:0b");
  assert.equal(gone, undefined);
});

Deno.test("addNeigh() adds a permanent neighbour; a second is exists", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const vx = vxlan(nl);
  nl.addNeigh({ dev: vx.index, ip: "10.5.5.5", mac: "02:00:00:00:00:09" });
  nl.addNeigh({ dev: vx.index, ip: "fd00::5", mac: "02:00:00:00:00:0c", permanent: true });
  const neigh = await ipJson(ns.name, "neigh", "show", "dev", vx.name);
  const v4 = neigh.find((n) => n.dst === "10.5.5.5");
  assert.equal(v4?.lladdr, "02:00:00:00:00:09");
  assert.deepEqual(v4?.state, ["PERMANENT"]);
  const v6 = neigh.find((n) => n.dst === "fd00::5");
  assert.equal(v6?.lladdr, "02:00:00:00:00:0c");
  throwsKind(
    () => nl.addNeigh({ dev: vx.index, ip: "10.5.5.5", mac: "02:00:00:00:00:0d" }),
    "exists",
  );
});

Deno.test("addNeigh() on a missing device throws kind notfound", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  throwsKind(
    () => nl.addNeigh({ dev: 4242, ip: "10.5.5.5", mac: "02:00:00:00:00:09" }),
    "notfound",
  );
});

Deno.test(
  "listNeigh() reports permanent entries with their MAC; delNeigh() removes one",
  opts,
  async () => {
    await using ns = await tempNetns("fnb");
    using nl = Netlink.open(ns.path);
    const vx = vxlan(nl, "fvx");
    nl.addNeigh({ dev: vx.index, ip: "10.6.6.0", mac: "02:00:00:00:00:21" });
    nl.addNeigh({ dev: vx.index, ip: "10.7.7.0", mac: "02:00:00:00:00:22" });
    const mine = nl.listNeigh({ dev: vx.index, family: 4 }).map((n) => [n.ip, n.mac, n.permanent]);
    assert.deepEqual(mine.sort(), [
      ["10.6.6.0", "02:00:00:00:00:21", true],
      ["10.7.7.0", "02:00:00:00:00:22", true],
    ]);
    nl.delNeigh({ dev: vx.index, ip: "10.6.6.0" });
    const left = await ipJson(ns.name, "neigh", "show", "dev", vx.name);
    assert.deepEqual(left.map((n) => n.dst), ["10.7.7.0"]);
    throwsKind(() => nl.delNeigh({ dev: vx.index, ip: "10.6.6.0" }), "notfound");
  },
);

Deno.test("addVxlan() with mac gives the device that address", opts, async () => {
  await using ns = await tempNetns("fnb");
  using nl = Netlink.open(ns.path);
  const name = ppName("fvx");
  nl.addVxlan({ name, vni: 7, local: "10.1.1.1", learning: false, mac: "0a:58:0a:f4:01:00" });
  assert.equal(nl.requireLink(name).mac, "0a:58:0a:f4:01:00");
});

Deno.test(
  "getLink() reports a VXLAN device's VNI, port, local address and learning",
  opts,
  async () => {
    await using ns = await tempNetns("fnb");
    using nl = Netlink.open(ns.path);
    const name = ppName("fvx");
    nl.addVxlan({ name, vni: 4242, port: 8472, local: "10.1.1.1", learning: false });
    assert.deepEqual(nl.requireLink(name).vxlan, {
      vni: 4242,
      port: 8472,
      local: "10.1.1.1",
      learning: false,
    });
  },
);
