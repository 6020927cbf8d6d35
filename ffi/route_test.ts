import assert from "node:assert/strict";
import { ipJson, isRoot, ppName, tempNetns } from "../tests/testutils.ts";
import { throwsKind } from "./_testing.ts";
import { Netlink } from "./mod.ts";

const opts = { ignore: !isRoot };

type IpRoute = {
  dst: string;
  gateway?: string;
  dev?: string;
  scope?: string;
  metric?: number;
  prefsrc?: string;
  flags: string[];
  metrics?: Array<Record<string, number>>;
};

async function ipRoutes(ns: string, ...args: string[]): Promise<IpRoute[]> {
  return (await ipJson(ns, ...args, "route", "show")) as unknown as IpRoute[];
}

/** A bridge, up, with one IPv4 and one IPv6 address; returns its name and index. */
function uplink(nl: Netlink): { name: string; index: number } {
  const name = ppName("br");
  nl.addBridge({ name });
  nl.setUp(name);
  nl.addAddr(name, "10.0.0.2/24");
  nl.addAddr(name, "fd00::2/64", { noDad: true });
  return { name, index: nl.requireLink(name).index };
}

Deno.test("addRoute() adds a default route via a gateway", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const up = uplink(nl);
  nl.addRoute({ dst: "0.0.0.0/0", gw: "10.0.0.1" });
  const def = (await ipRoutes(ns.name)).find((r) => r.dst === "default");
  assert.equal(def?.gateway, "10.0.0.1");
  assert.equal(def?.dev, up.name);
  const mine = nl.listRoutes({ family: 4 }).find((r) => r.dst === "0.0.0.0/0");
  assert.deepEqual(mine, {
    dst: "0.0.0.0/0",
    gw: "10.0.0.1",
    dev: up.index,
    table: 254,
    scope: 0,
    family: 4,
    type: 1,
  });
});

Deno.test("addRoute() sets metric, mtu, advmss and src", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const up = uplink(nl);
  nl.addRoute({
    dst: "10.50.0.0/16",
    gw: "10.0.0.1",
    dev: up.index,
    metric: 77,
    mtu: 1400,
    advmss: 1360,
    src: "10.0.0.2",
  });
  const r = (await ipRoutes(ns.name)).find((x) => x.dst === "10.50.0.0/16")!;
  assert.equal(r.gateway, "10.0.0.1");
  assert.equal(r.metric, 77);
  assert.equal(r.prefsrc, "10.0.0.2");
  const metrics = Object.assign({}, ...(r.metrics ?? []));
  assert.equal(metrics.mtu, 1400);
  assert.equal(metrics.advmss, 1360);
  const mine = nl.listRoutes({ dev: up.index }).find((x) => x.dst === "10.50.0.0/16")!;
  assert.equal(mine.metric, 77);
  assert.equal(mine.mtu, 1400);
  assert.equal(mine.advmss, 1360);
  assert.equal(mine.src, "10.0.0.2");
});

Deno.test(
  "addRoute() without gateway is a link-scope route; onlink reaches any gw",
  opts,
  async () => {
    await using ns = await tempNetns();
    using nl = Netlink.open(ns.path);
    const up = uplink(nl);
    nl.addRoute({ dst: "192.168.7.0/24", dev: up.index });
    nl.addRoute({ dst: "192.168.8.0/24", gw: "172.16.0.1", dev: up.index, onlink: true });
    const routes = await ipRoutes(ns.name);
    const direct = routes.find((r) => r.dst === "192.168.7.0/24")!;
    assert.equal(direct.scope, "link");
    const onlink = routes.find((r) => r.dst === "192.168.8.0/24")!;
    assert.equal(onlink.gateway, "172.16.0.1");
    assert.ok(onlink.flags.includes("onlink"));
    assert.equal(nl.listRoutes().find((r) => r.dst === "192.168.7.0/24")?.scope, 253);
  },
);

Deno.test("addRoute() into another table and an IPv6 default route", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const up = uplink(nl);
  nl.addRoute({ dst: "10.60.0.0/16", gw: "10.0.0.1", table: 100 });
  nl.addRoute({ dst: "10.61.0.0/16", gw: "10.0.0.1", table: 1000 });
  nl.addRoute({ dst: "::/0", gw: "fd00::1", dev: up.index });
  assert.equal((await ipRoutes(ns.name, "-4")).some((r) => r.dst === "10.60.0.0/16"), false);
  const t100 = await ipJson(ns.name, "route", "show", "table", "100");
  assert.deepEqual(t100.map((r) => r.dst), ["10.60.0.0/16"]);
  const t1000 = await ipJson(ns.name, "route", "show", "table", "1000");
  assert.deepEqual(t1000.map((r) => r.dst), ["10.61.0.0/16"]);
  assert.deepEqual(nl.listRoutes({ table: 100 }).map((r) => [r.dst, r.table]), [
    ["10.60.0.0/16", 100],
  ]);
  assert.deepEqual(nl.listRoutes({ table: 1000 }).map((r) => r.table), [1000]);
  assert.ok(nl.listRoutes({ table: 0 }).some((r) => r.table === 255)); // local table
  const v6 = (await ipRoutes(ns.name, "-6")).find((r) => r.dst === "default");
  assert.equal(v6?.gateway, "fd00::1");
  const mine = nl.listRoutes({ family: 6 }).find((r) => r.dst === "::/0");
  assert.equal(mine?.gw, "fd00::1");
  assert.equal(mine?.family, 6);
});

Deno.test(
  "addRoute() clears host bits and takes a bare address as a host route",
  opts,
  async () => {
    await using ns = await tempNetns();
    using nl = Netlink.open(ns.path);
    uplink(nl);
    nl.addRoute({ dst: "10.70.1.9/16", gw: "10.0.0.1" });
    nl.addRoute({ dst: "10.80.0.1", gw: "10.0.0.1" });
    const dsts = (await ipRoutes(ns.name)).map((r) => r.dst);
    assert.ok(dsts.includes("10.70.0.0/16"), dsts.join());
    assert.ok(dsts.includes("10.80.0.1"), dsts.join());
    assert.ok(nl.listRoutes().some((r) => r.dst === "10.80.0.1/32"));
  },
);

Deno.test("addRoute() of an existing route throws exists; unreachable gw fails", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  uplink(nl);
  nl.addRoute({ dst: "10.90.0.0/16", gw: "10.0.0.1" });
  throwsKind(() => nl.addRoute({ dst: "10.90.0.0/16", gw: "10.0.0.1" }), "exists");
  const err = throwsKind(() => nl.addRoute({ dst: "10.91.0.0/16", gw: "172.31.0.1" }), "other");
  assert.ok(err.message.includes("10.91.0.0/16 via 172.31.0.1"), err.message);
});

Deno.test("delRoute() deletes the route; a missing one is notfound", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const up = uplink(nl);
  nl.addRoute({ dst: "10.95.0.0/16", gw: "10.0.0.1", metric: 5 });
  nl.addRoute({ dst: "fd01::/64", gw: "fd00::1", dev: up.index });
  nl.delRoute({ dst: "10.95.0.0/16", gw: "10.0.0.1", metric: 5 });
  nl.delRoute({ dst: "fd01::/64" });
  const dsts = (await ipJson(ns.name, "route", "show", "table", "all")).map((r) => r.dst);
  assert.ok(!dsts.includes("10.95.0.0/16"));
  assert.ok(!dsts.includes("fd01::/64"));
  throwsKind(() => nl.delRoute({ dst: "10.95.0.0/16" }), "notfound");
  throwsKind(() => nl.delRoute({ dst: "fd01::/64" }), "notfound");
});

Deno.test("listRoutes() of the main table matches ip route", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  uplink(nl);
  nl.addRoute({ dst: "10.99.0.0/16", gw: "10.0.0.1" });
  const mine = nl.listRoutes({ family: 4 }).map((r) => r.dst).sort();
  const theirs = (await ipRoutes(ns.name, "-4")).map((r) => r.dst).sort();
  assert.deepEqual(mine, theirs);
});
