import assert from "node:assert/strict";
import { CniError } from "../../conf/errors.ts";
import type { CniResult } from "../../conf/types.ts";
import { builtinPlugin } from "../runner/builtin.ts";
import { createRegistry } from "../runner/registry.ts";
import { calcGateways, makeBridge, parseBridgeConf, parseVlanTrunk } from "./bridge.ts";
import { spoofchkNames } from "../_shared/spoofchk.ts";
import { ipJson, isRoot, linkExists, run, tempNetns, tryRun } from "../../tests/testutils.ts";
import { type Any, eventually, exists, invoker, isCode, rig } from "../_shared/testing.ts";

function assertEquals(actual: unknown, expected: unknown, msg?: string): void {
  assert.deepStrictEqual(actual, expected, msg);
}

/** Links of a netns other than lo and the bridge. */
async function ports(ns: string, bridge: string): Promise<string[]> {
  const links = await ipJson(ns, "link", "show");
  return links.map((l) => l.ifname as string).filter((n) => n !== "lo" && n !== bridge);
}

function baseConf(dataDir: string, extra: object = {}, ipam: object = {}) {
  return {
    cniVersion: "1.0.0",
    name: "ppnet",
    type: "bridge",
    bridge: "ppbr0",
    isGateway: true,
    ipam: { type: "host-local", subnet: "10.250.7.0/24", dataDir, ...ipam },
    ...extra,
  };
}

Deno.test("parseBridgeConf() applies the reference defaults", () => {
  const c = parseBridgeConf({ name: "n", ipam: { type: "host-local" } });
  assertEquals(c.bridge, "cni0");
  assertEquals(c.isGateway, false);
  assertEquals(c.vlan, 0);
  assertEquals(c.ipamType, "host-local");
  assertEquals(parseBridgeConf({ isDefaultGateway: true }).isGateway, true);
});

Deno.test("parseBridgeConf() rejects bad field types and ranges with code 7", () => {
  for (const bad of [{ mtu: "1500" }, { vlan: 4095 }, { isGateway: "yes" }, { bridge: 3 }]) {
    assert.throws(() => parseBridgeConf(bad), isCode(7), JSON.stringify(bad));
  }
});

Deno.test("parseVlanTrunk() merges ids and ranges in order and rejects half ranges", () => {
  assertEquals(parseVlanTrunk([{ id: 7 }, { minID: 3, maxID: 5 }, { id: 4 }]), [3, 4, 5, 7]);
  assert.throws(() => parseVlanTrunk([{ minID: 3 }]), CniError);
  assert.throws(() => parseVlanTrunk([{ minID: 5, maxID: 3 }]), CniError);
});

Deno.test("calcGateways() fills network+1 and adds one default route per family", () => {
  const c = parseBridgeConf({ isDefaultGateway: true });
  const r: CniResult = {
    cniVersion: "1.1.0",
    ips: [{ address: "10.1.2.9/24" }, { address: "fd00::9/64", gateway: "fd00::fe" }],
  };
  const gws = calcGateways(r, c);
  assertEquals(gws, { 4: ["10.1.2.1/24"], 6: ["fd00::fe/64"] });
  assertEquals(r.ips!.map((i) => i.interface), [2, 2]);
  assertEquals(r.routes, [{ dst: "0.0.0.0/0", gw: "10.1.2.1" }, { dst: "::/0", gw: "fd00::fe" }]);
});

Deno.test("bridge ADD rejects vlan with vlanTrunk with code 7 before touching anything", async () => {
  const add = invoker(makeBridge());
  const conf = {
    cniVersion: "1.0.0",
    name: "n",
    type: "bridge",
    bridge: "ppnever",
    vlan: 10,
    vlanTrunk: [{ id: 20 }],
  };
  await assert.rejects(
    add("ADD", conf, { containerId: "c", netns: "/nonexistent", ifname: "eth0" }),
    (e) => isCode(7)(e) && /"vlan" with "vlanTrunk"/.test((e as Error).message),
  );
});

Deno.test({
  name: "bridge ADD, CHECK and DEL manage the veth, addresses and lease",
  ignore: !isRoot,
  async fn() {
    await using t = await rig(makeBridge);
    const { host, pod, call } = t;
    const env = { containerId: "ctr1", netns: pod.path, ifname: "eth0" };
    const conf = baseConf(t.data);
    const res = await call("ADD", conf, env) as Any;
    assertEquals(res.ips, [{ address: "10.250.7.2/24", gateway: "10.250.7.1", interface: 2 }]);
    assertEquals(res.interfaces.length, 3);
    assertEquals(res.interfaces[0].name, "ppbr0");
    assert(/^veth[0-9a-f]{8}$/.test(res.interfaces[1].name));
    assertEquals(res.interfaces[2].name, "eth0");
    assertEquals(res.interfaces[2].sandbox, pod.path);

    const [eth0] = await ipJson(pod.name, "addr", "show", "dev", "eth0");
    assertEquals(eth0.address, res.interfaces[2].mac);
    assert(JSON.stringify(eth0.addr_info).includes('"10.250.7.2"'));
    const [veth] = await ipJson(host.name, "link", "show", "dev", res.interfaces[1].name);
    assertEquals(veth.master, "ppbr0");
    const [br] = await ipJson(host.name, "addr", "show", "dev", "ppbr0");
    assert(JSON.stringify(br.addr_info).includes('"10.250.7.1"'));
    assertEquals(
      (await run("ip", "netns", "exec", host.name, "sysctl", "-n", "net.ipv4.ip_forward")).trim(),
      "1",
    );

    await call("CHECK", { ...conf, prevResult: res }, env);
    await run("ip", "-n", pod.name, "addr", "del", "10.250.7.2/24", "dev", "eth0");
    await assert.rejects(call("CHECK", { ...conf, prevResult: res }, env), CniError);

    await call("DEL", { ...conf, prevResult: res }, env);
    await call("DEL", { ...conf, prevResult: res }, env);
    assertEquals(await linkExists(pod.name, "eth0"), false);
    assertEquals(await ports(host.name, "ppbr0"), []);
    assertEquals(await exists(`${t.data}/ppnet/10.250.7.2`), false);
    assert(await linkExists(host.name, "ppbr0"), "the bridge is never deleted");
  },
});

Deno.test({
  name: "bridge DEL after the netns is gone still releases the lease",
  ignore: !isRoot,
  async fn() {
    await using t = await rig(makeBridge);
    const { host, pod, call } = t;
    const conf = baseConf(t.data);
    const env = { containerId: "ctr2", netns: pod.path, ifname: "eth0" };
    try {
      await call("ADD", conf, env);
      assert(await exists(`${t.data}/ppnet/10.250.7.2`));
    } finally {
      await pod[Symbol.asyncDispose]();
    }
    await call("DEL", conf, env);
    assertEquals(await exists(`${t.data}/ppnet/10.250.7.2`), false);
    // The kernel destroys a dead netns (and with it the veth pair) asynchronously.
    assertEquals(await eventually(() => ports(host.name, "ppbr0"), []), []);
  },
});

Deno.test({
  name: "bridge ADD leaves nothing behind when IPAM fails or a later step fails",
  ignore: !isRoot,
  async fn() {
    await using t = await rig(makeBridge);
    const { host, pod, call } = t;
    const env = { containerId: "ctr3", netns: pod.path, ifname: "eth0" };
    const cases = [
      baseConf(t.data, { ipam: { type: "pp-no-such-ipam" } }),
      baseConf(t.data, {}, { rangeStart: "10.250.7.9", rangeEnd: "10.250.7.9" }),
      // The route's gateway is unreachable from the pod: ConfigureIface fails after IPAM.
      baseConf(t.data, {}, { routes: [{ dst: "10.99.0.0/16", gw: "192.0.2.1" }] }),
    ];
    // Exhaust the one-address range of the second case first, with another container.
    const other = { ...env, containerId: "holder", netns: pod.path, ifname: "eth9" };
    await call("ADD", cases[1], other);
    for (const conf of cases) {
      await assert.rejects(call("ADD", conf, env));
      assertEquals(await linkExists(pod.name, "eth0"), false);
      const files = [...Deno.readDirSync(`${t.data}/ppnet`)].map((e) => e.name).sort();
      assertEquals(files.filter((f) => f.startsWith("10.")), ["10.250.7.9"]);
      assertEquals((await ports(host.name, "ppbr0")).length, 1, "only the holder's veth");
    }
    await call("DEL", cases[1], other);
  },
});

Deno.test({
  name: "bridge ADD fails with code 105 when CNI_IFNAME exists and creates nothing",
  ignore: !isRoot,
  async fn() {
    await using t = await rig(makeBridge);
    const { host, pod, call } = t;
    await run("ip", "-n", pod.name, "link", "add", "eth0", "type", "veth", "peer", "name", "ppx0");
    const env = { containerId: "ctr4", netns: pod.path, ifname: "eth0" };
    await assert.rejects(call("ADD", baseConf(t.data), env), isCode(105));
    assertEquals(await ports(host.name, "ppbr0"), []);
    assertEquals(await exists(`${t.data}/ppnet/10.250.7.2`), false);
  },
});

Deno.test({
  name: "bridge with ipMasq and isDefaultGateway adds a default route and a masquerade chain",
  ignore: !isRoot,
  async fn() {
    await using t = await rig(makeBridge);
    const { host, pod, call } = t;
    const env = { containerId: "ctr5", netns: pod.path, ifname: "eth0" };
    const conf = baseConf(t.data, { ipMasq: true, isDefaultGateway: true });
    const res = await call("ADD", conf, env) as Any;
    assertEquals(res.routes, [{ dst: "0.0.0.0/0", gw: "10.250.7.1" }]);
    const routes = await ipJson(pod.name, "route", "show", "default");
    assertEquals(routes[0]?.gateway, "10.250.7.1");
    const nat = await run("ip", "netns", "exec", host.name, "iptables", "-t", "nat", "-S");
    const chain = /-N (CNI-[0-9a-f]{24})/.exec(nat)?.[1];
    assert(chain, nat);
    assert(nat.includes(`-A POSTROUTING -s 10.250.7.2/32`) && nat.includes(`-j ${chain}`), nat);
    await call("CHECK", { ...conf, prevResult: res }, env);
    await call("DEL", conf, env);
    const after = await run("ip", "netns", "exec", host.name, "iptables", "-t", "nat", "-S");
    assert(!after.includes(chain!), after);
  },
});

Deno.test({
  name: "bridge without ipam brings an unaddressed container link up in the link group",
  ignore: !isRoot,
  async fn() {
    await using host = await tempNetns("h");
    await using pod = await tempNetns("c");
    const d = makeBridge({ hostNs: host.path });
    const registry = createRegistry({ builtins: {} });
    const plugin = builtinPlugin(d, () => registry);
    const conf = { cniVersion: "1.0.0", name: "l2", type: "bridge", bridge: "ppbr1", mtu: 1400 };
    const env = { containerId: "ctr6", netns: pod.path, ifname: "net1", path: [] };
    const bytes = new TextEncoder().encode(JSON.stringify(conf));
    const res = await plugin.invoke({ command: "ADD", conf: bytes, env, linkGroup: 4242 }) as Any;
    assertEquals(res.ips, undefined);
    const [l] = await ipJson(pod.name, "-d", "link", "show", "dev", "net1");
    assertEquals(l.mtu, 1400);
    assert((l.flags as string[]).includes("UP"));
    assertEquals(String(l.group), "4242");
    await plugin.invoke({ command: "DEL", conf: bytes, env });
    assertEquals(await tryRun("ip", "-n", pod.name, "link", "show", "net1"), false);
  },
});

/** The host netns's nftables ruleset as nft's JSON objects. */
async function nftObjects(ns: string): Promise<Any[]> {
  return JSON.parse(await run("ip", "netns", "exec", ns, "nft", "-j", "list", "ruleset")).nftables;
}

/** One ping from `ns` to `ip`, a few tries (the first may be spent on ARP). */
async function pings(ns: string, ip: string, tries = 3): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await tryRun("ip", "netns", "exec", ns, "ping", "-c1", "-W1", ip)) return true;
  }
  return false;
}

Deno.test("spoofchkNames() gives the reference's chain names and rule comment", () => {
  assertEquals(spoofchkNames("ctr.1", "eth0"), {
    ifaceChain: "cni-br-iface-ctr.1-eth0",
    macChain: "cni-br-iface-ctr.1-eth0-mac",
    comment: "macspoofchk-ctr.1-eth0",
  });
});

Deno.test({
  name: "bridge macspoofchk drops frames with a spoofed source MAC and DEL removes its rules",
  ignore: !isRoot,
  async fn() {
    const realHostRules = await run("nft", "list", "ruleset");
    await using t = await rig(makeBridge);
    const { host, pod, call } = t;
    const env = { containerId: "ctr7", netns: pod.path, ifname: "eth0" };
    const conf = baseConf(t.data, { macspoofchk: true });
    const res = await call("ADD", conf, env);
    const [veth, mac] = [res.interfaces[1].name, res.interfaces[2].mac];

    const objs = await nftObjects(host.name);
    const chains = objs.filter((o) => o.chain?.table === "nat").map((o) => o.chain.name).sort();
    assertEquals(chains, ["PREROUTING", "cni-br-iface-ctr7-eth0", "cni-br-iface-ctr7-eth0-mac"]);
    const rules = objs.filter((o) => o.rule?.comment === "macspoofchk-ctr7-eth0").map((o) =>
      JSON.stringify(o.rule)
    );
    assertEquals(rules.length, 4);
    assert(rules.some((r) => r.includes(`"right":"${veth}"`) && r.includes('"jump"')), rules[0]);
    assert(rules.some((r) => r.includes(`"right":"${mac}"`) && r.includes('"return"')), rules[2]);
    assert(rules.some((r) => r.includes('"drop"')), rules[3]);

    assert(await pings(pod.name, "10.250.7.1"), "the real MAC reaches the gateway");
    await run("ip", "-n", pod.name, "link", "set", "eth0", "address", "02:00:00:00:0e:e1");
    // The gateway must learn the pod's MAC anew (ARP), so a dropped reply is what fails.
    await run("ip", "-n", host.name, "neigh", "flush", "dev", "ppbr0");
    assertEquals(await pings(pod.name, "10.250.7.1", 2), false, "a spoofed MAC is dropped");
    await run("ip", "-n", pod.name, "link", "set", "eth0", "address", mac);
    assert(await pings(pod.name, "10.250.7.1"), "the real MAC works again");

    await call("DEL", conf, env);
    await call("DEL", conf, env);
    const after = await nftObjects(host.name);
    assertEquals(after.filter((o) => o.rule?.comment?.startsWith("macspoofchk")), []);
    assertEquals(after.filter((o) => o.chain?.name?.startsWith("cni-br-iface")), []);
    assertEquals(await run("nft", "list", "ruleset"), realHostRules, "the real host is untouched");
  },
});

Deno.test({
  name: "bridge macspoofchk rules are removed when a later ADD step fails",
  ignore: !isRoot,
  async fn() {
    await using t = await rig(makeBridge);
    const env = { containerId: "ctr8", netns: t.pod.path, ifname: "eth0" };
    const conf = baseConf(t.data, { macspoofchk: true, ipam: { type: "pp-no-such-ipam" } });
    await assert.rejects(t.call("ADD", conf, env));
    const after = await nftObjects(t.host.name);
    assertEquals(after.filter((o) => o.chain?.name?.startsWith("cni-br-iface")), []);
    assertEquals(after.filter((o) => o.rule?.comment?.startsWith("macspoofchk")), []);
    assertEquals(await linkExists(t.pod.name, "eth0"), false);
  },
});

Deno.test({
  name: "bridge ADD takes a MAC in each net.ParseMAC form, normalised; 20 octets is code 7",
  ignore: !isRoot,
  async fn() {
    await using t = await rig(makeBridge);
    const { pod, call } = t;
    const forms = [["02-00-00-AA-BB-01", "02:00:00:aa:bb:01"], [
      "0200.00aa.bb02",
      "02:00:00:aa:bb:02",
    ]];
    for (const [i, [mac, want]] of forms.entries()) {
      const env = { containerId: `ctrmac${i}`, netns: pod.path, ifname: `eth${i}` };
      const conf = baseConf(t.data, { runtimeConfig: { mac }, capabilities: { mac: true } });
      const res = await call("ADD", conf, env) as Any;
      assertEquals(res.interfaces[2].mac, want);
      const [link] = await ipJson(pod.name, "link", "show", "dev", `eth${i}`);
      assertEquals(link.address, want);
      await call("DEL", conf, env);
    }
    const ib = "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01";
    const env = { containerId: "ctrmacib", netns: pod.path, ifname: "eth9" };
    await assert.rejects(
      call("ADD", baseConf(t.data, { runtimeConfig: { mac: ib } }), env),
      (e) => isCode(7)(e) && /"mac".*20-octet/.test((e as Error).message),
    );
    assertEquals(await linkExists(pod.name, "eth9"), false);
    assertEquals(await exists(`${t.data}/ppnet/10.250.7.4`), false);
  },
});

Deno.test("every link-name field longer than 15 bytes or not a link name is code 7 naming it", async () => {
  const { parseVxlanConf } = await import("./vxlan.ts");
  const { macvlan } = await import("./macvlan.ts");
  const { ipvlan } = await import("./ipvlan.ts");
  const bad = ["a-very-long-bridge", "br/0", "br:0", "br 0", "..", "ünïcödé-brïdge"];
  for (const v of bad) {
    const cases: Array<[string, () => unknown]> = [
      ["bridge", () => parseBridgeConf({ bridge: v })],
      ["bridge", () => parseVxlanConf({ vni: 5, bridge: v })],
      ["vxlanName", () => parseVxlanConf({ vni: 5, vxlanName: v })],
      ["dev", () => parseVxlanConf({ vni: 5, dev: v })],
      ["master", () => macvlan.parseConf({ master: v })],
      ["master", () => ipvlan.parseConf({ master: v })],
    ];
    for (const [field, parse] of cases) {
      assert.throws(parse, (e) => {
        assert.ok(e instanceof CniError, `${field}=${v}: ${e}`);
        assertEquals(e.code, 7);
        assert.ok(e.message.includes(`"${field}": ${JSON.stringify(v)}`), e.message);
        return true;
      });
    }
  }
  assertEquals(parseBridgeConf({ bridge: "exactly15bytes_" }).bridge, "exactly15bytes_");
});
