import assert from "node:assert/strict";
import { ipJson, isRoot, ppName, tempNetns } from "../tests/testutils.ts";
import { throwsKind } from "./_testing.ts";
import { Netlink } from "./mod.ts";

const opts = { ignore: !isRoot };

type IpAddr = {
  family: string;
  local: string;
  prefixlen: number;
  broadcast?: string;
  scope: string;
  nodad?: boolean;
  tentative?: boolean;
};

async function ipAddrs(ns: string, dev: string): Promise<IpAddr[]> {
  const out = await ipJson(ns, "addr", "show", "dev", dev);
  return (out[0]?.addr_info ?? []) as IpAddr[];
}

/** A bridge, up, to hold addresses. */
function bridge(nl: Netlink): string {
  const name = ppName("br");
  nl.addBridge({ name });
  nl.setUp(name);
  return name;
}

Deno.test("addAddr() adds an IPv4 address with its broadcast", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const dev = bridge(nl);
  nl.addAddr(dev, "10.20.30.40/24");
  const v4 = (await ipAddrs(ns.name, dev)).filter((a) => a.family === "inet");
  assert.deepEqual(v4.map((a) => [a.local, a.prefixlen, a.broadcast, a.scope]), [
    ["10.20.30.40", 24, "10.20.30.255", "global"],
  ]);
});

Deno.test("addAddr() of a /32 sets no broadcast", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const dev = bridge(nl);
  nl.addAddr(nl.requireLink(dev).index, "10.9.9.9/32");
  const v4 = (await ipAddrs(ns.name, dev)).filter((a) => a.family === "inet");
  assert.deepEqual(v4.map((a) => [a.local, a.prefixlen, a.broadcast]), [[
    "10.9.9.9",
    32,
    undefined,
  ]]);
});

Deno.test("addAddr() with noDad adds an IPv6 address that is not tentative", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const dev = bridge(nl);
  nl.addAddr(dev, "fd00:0:0:1::2/64", { noDad: true });
  const v6 = (await ipAddrs(ns.name, dev)).filter((a) =>
    a.family === "inet6" && a.scope === "global"
  );
  assert.equal(v6.length, 1);
  assert.equal(v6[0].local, "fd00:0:0:1::2");
  assert.equal(v6[0].prefixlen, 64);
  assert.equal(v6[0].nodad, true);
  assert.equal(v6[0].tentative, undefined);
});

Deno.test("addAddr() of an address already there throws kind exists", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const dev = bridge(nl);
  nl.addAddr(dev, "10.0.0.2/24");
  const err = throwsKind(() => nl.addAddr(dev, "10.0.0.2/24"), "exists");
  assert.ok(err.message.includes("10.0.0.2/24"), err.message);
});

Deno.test("addAddr() on a missing link throws kind notfound", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  throwsKind(() => nl.addAddr("ppmissing", "10.0.0.2/24"), "notfound");
  throwsKind(() => nl.addAddr(4242, "10.0.0.2/24"), "notfound");
});

Deno.test("addAddr() refuses malformed CIDR text with CniError code 7", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const dev = bridge(nl);
  assert.throws(() => nl.addAddr(dev, "10.0.0.300/24"), (e: unknown) => {
    return (e as { code?: number }).code === 7;
  });
});

Deno.test("delAddr() removes an address; a missing one is notfound", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const dev = bridge(nl);
  nl.addAddr(dev, "10.0.0.2/24");
  // Another subnet: deleting a primary address also drops its secondaries (kernel default).
  nl.addAddr(dev, "10.0.1.3/24");
  nl.delAddr(dev, "10.0.0.2/24");
  const left = (await ipAddrs(ns.name, dev)).filter((a) => a.family === "inet");
  assert.deepEqual(left.map((a) => a.local), ["10.0.1.3"]);
  throwsKind(() => nl.delAddr(dev, "10.0.0.2/24"), "notfound");
  nl.addAddr(dev, "fd00::5/64", { noDad: true });
  nl.delAddr(dev, "fd00::5/64");
  throwsKind(() => nl.delAddr(dev, "fd00::5/64"), "notfound");
});

Deno.test("listAddrs() filters by link and family and matches ip addr", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const a = bridge(nl);
  const b = bridge(nl);
  nl.addAddr(a, "10.1.0.2/16");
  nl.addAddr(a, "fd00:a::2/64", { noDad: true });
  nl.addAddr(b, "10.2.0.2/24");
  const ia = nl.requireLink(a).index;
  const onA = nl.listAddrs(a);
  assert.ok(onA.every((x) => x.index === ia));
  assert.deepEqual(nl.listAddrs(a, 4), [{
    index: ia,
    address: "10.1.0.2",
    prefixLen: 16,
    family: 4,
    cidr: "10.1.0.2/16",
    scope: 0,
  }]);
  const v6 = nl.listAddrs(ia, 6).filter((x) => x.scope === 0).map((x) => x.cidr);
  assert.deepEqual(v6, ["fd00:a::2/64"]);
  const all4 = nl.listAddrs(undefined, 4).map((x) => x.cidr).sort();
  assert.deepEqual(all4, ["10.1.0.2/16", "10.2.0.2/24", "127.0.0.1/8"]);
  const theirs = (await ipAddrs(ns.name, a)).map((x) => `${x.local}/${x.prefixlen}`).sort();
  assert.deepEqual(onA.map((x) => x.cidr).sort(), theirs);
  throwsKind(() => nl.listAddrs("ppmissing"), "notfound");
});
