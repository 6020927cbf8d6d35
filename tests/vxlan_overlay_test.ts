/**
 * Two throwaway netns act as nodes joined by an underlay veth; each runs the built-in vxlan
 * delegate (host side = its node netns) for one pod netns on VNI 42. The pods must reach
 * each other across the overlay, and the overlay MTU must be the underlay's minus 50.
 */
import assert from "node:assert/strict";
import { builtinPlugin } from "../delegates/runner/builtin.ts";
import { createRegistry } from "../delegates/runner/registry.ts";
import { makeVxlan } from "../delegates/main/vxlan.ts";
import { ipJson, isRoot, run, tempDir, tempNetns, tryRun } from "./testutils.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

function node(hostNs: string) {
  const registry = createRegistry({ builtins: {} });
  const plugin = builtinPlugin(makeVxlan({ hostNs }), () => registry);
  return (command: "ADD" | "DEL" | "CHECK", conf: object, env: object) =>
    plugin.invoke({
      command,
      conf: new TextEncoder().encode(JSON.stringify(conf)),
      env: { path: ["/usr/lib/cni"], ...env },
    }) as Promise<Any>;
}

function vxConf(dev: string, local: string, remote: string, dataDir: string, first: number) {
  return {
    cniVersion: "1.0.0",
    name: "ppoverlay",
    type: "vxlan",
    vni: 42,
    dev,
    local,
    remotes: [remote],
    ipam: {
      type: "host-local",
      subnet: "10.251.42.0/24",
      rangeStart: `10.251.42.${first}`,
      rangeEnd: `10.251.42.${first + 9}`,
      dataDir,
    },
  };
}

/** ping -c1 -W1 inside `ns`, a few tries (the first may be spent on ARP through the FDB). */
async function pings(ns: string, ip: string): Promise<boolean> {
  for (let i = 0; i < 5; i++) {
    if (await tryRun("ip", "netns", "exec", ns, "ping", "-c1", "-W1", ip)) return true;
  }
  return false;
}

Deno.test({
  name: "pods on two nodes reach each other over the vxlan overlay with MTU underlay - 50",
  ignore: !isRoot,
  async fn() {
    await using nodeA = await tempNetns("na");
    await using nodeB = await tempNetns("nb");
    await using podA = await tempNetns("pa");
    await using podB = await tempNetns("pb");
    await using dataA = await tempDir();
    await using dataB = await tempDir();
    await run(
      "ip",
      "-n",
      nodeA.name,
      "link",
      "add",
      "ppuA",
      "mtu",
      "1400",
      "type",
      "veth",
      "peer",
      "name",
      "ppuB",
      "netns",
      nodeB.name,
    );
    await run("ip", "-n", nodeB.name, "link", "set", "ppuB", "mtu", "1400");
    for (
      const [ns, dev, ip] of [[nodeA, "ppuA", "10.250.0.1"], [nodeB, "ppuB", "10.250.0.2"]] as const
    ) {
      await run("ip", "-n", ns.name, "addr", "add", `${ip}/24`, "dev", dev);
      await run("ip", "-n", ns.name, "link", "set", dev, "up");
    }
    const a = node(nodeA.path);
    const b = node(nodeB.path);
    const confA = vxConf("ppuA", "10.250.0.1", "10.250.0.2", dataA.path, 10);
    const confB = vxConf("ppuB", "10.250.0.2", "10.250.0.1", dataB.path, 20);
    const envA = { containerId: "podA", netns: podA.path, ifname: "eth0" };
    const envB = { containerId: "podB", netns: podB.path, ifname: "eth0" };
    const resA = await a("ADD", confA, envA);
    const resB = await b("ADD", confB, envB);
    assert.equal(resA.interfaces[0].name, "vxbr42");
    assert.equal(resA.ips[0].address, "10.251.42.10/24");
    assert.equal(resB.ips[0].address, "10.251.42.20/24");

    const [vx]: Any[] = await ipJson(nodeA.name, "-d", "link", "show", "dev", "vx42");
    assert.equal(vx.mtu, 1350);
    assert.equal(vx.linkinfo.info_data.id, 42);
    assert.equal(vx.linkinfo.info_data.learning, false);
    const [eth0] = await ipJson(podA.name, "link", "show", "dev", "eth0");
    assert.equal(eth0.mtu, 1350);
    const fdb = await run("bridge", "-n", nodeA.name, "fdb", "show", "dev", "vx42");
    assert.match(fdb, /00:00:00:00:00:00 dst 10\.250\.0\.2/);

    assert.ok(await pings(podA.name, "10.251.42.20"), "podA cannot ping podB");
    assert.ok(await pings(podB.name, "10.251.42.10"), "podB cannot ping podA");

    await a("CHECK", { ...confA, prevResult: resA }, envA);
    await a("DEL", confA, envA);
    await b("DEL", confB, envB);
    assert.equal(await pings(podA.name, "10.251.42.20"), false);
  },
});
