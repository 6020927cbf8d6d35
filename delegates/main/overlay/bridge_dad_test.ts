/** The node's bridge without IPv6 DAD (bridge_dad.ts), in a throwaway netns. */
import assert from "node:assert/strict";
import { Netlink } from "../../../ffi/mod.ts";
import { readSysctl } from "../../../ffi/sysctl.ts";
import { ipJson, isRoot, run, tempNetns } from "../../../tests/testutils.ts";
import { bridgeWithoutDad } from "./bridge_dad.ts";

Deno.test({
  name:
    "bridgeWithoutDad() adds the bridge's tentative gateway and link-local address again without DAD, once per bridge",
  ignore: !isRoot,
  async fn() {
    await using ns = await tempNetns("gd");
    await run("ip", "-n", ns.name, "link", "add", "cni0", "type", "bridge");
    await run("ip", "-n", ns.name, "link", "set", "cni0", "up");
    // A port that is up gives the bridge a carrier, so DAD runs (the address is tentative).
    await run("ip", "-n", ns.name, "link", "add", "p0", "type", "veth", "peer", "name", "p1");
    await run("ip", "-n", ns.name, "link", "set", "p0", "master", "cni0", "up");
    await run("ip", "-n", ns.name, "link", "set", "p1", "up");
    await run("ip", "-n", ns.name, "addr", "add", "fd32:0:9::1/64", "dev", "cni0");
    const addrs = async () => {
      const [l] = await ipJson(ns.name, "-6", "addr", "show", "dev", "cni0") as Array<
        { addr_info: Array<{ local: string; tentative?: boolean; nodad?: boolean }> }
      >;
      return l.addr_info;
    };
    const before = await addrs();
    assert.equal(before.length, 2, JSON.stringify(before));
    assert.ok(before.every((a) => a.tentative), "the kernel runs DAD on both first");
    using nl = Netlink.open(ns.path);
    assert.equal(bridgeWithoutDad(nl, "cni0", ns.path), 2);
    const after = await addrs();
    assert.deepEqual(after.map((a) => a.local).sort(), before.map((a) => a.local).sort());
    assert.ok(after.every((a) => !a.tentative && a.nodad), JSON.stringify(after));
    assert.equal(readSysctl("net/ipv6/conf/cni0/accept_dad", ns.path), "0");
    // Once: a second ADD changes nothing; no bridge, nothing to do.
    assert.equal(bridgeWithoutDad(nl, "cni0", ns.path), 0);
    assert.equal(bridgeWithoutDad(nl, "cni9", ns.path), 0);
  },
});
