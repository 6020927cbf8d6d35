/**
 * The cluster network without encapsulation, end to end (flannel's `host-gw` backend and
 * vxlan `DirectRouting`): simulated nodes on one underlay bridge, a real etcd, the agents of
 * `podplex serve --cluster-network`, pods ADDed by `bin/podplex`.
 *
 * Names start with `ppg`; pods in 10.167.0.0/16, the underlay in 10.168.<r>.0/24.
 */
import assert from "node:assert/strict";
import { parseCidr } from "../conf/ip.ts";
import { readDirectRoutes } from "../delegates/main/overlay/direct.ts";
import { Netlink } from "../ffi/mod.ts";
import { haveEtcd } from "./etcd_server.ts";
import { type OverlayPod, OverlayRig } from "./_overlay_rig.ts";
import { isRoot } from "./testutils.ts";

const ignore = !isRoot || !haveEtcd();
const NETWORK = "10.167.0.0/16";
const PREFIX = "/coreos.com/network";

function routesOf(rig: OverlayRig, i: number): string[] {
  using nl = Netlink.open(`/run/netns/${rig.nodes[i].ns}`);
  return readDirectRoutes(nl, nl.requireLink("eth0").index, parseCidr(NETWORK));
}

function linkExists(rig: OverlayRig, i: number, name: string): boolean {
  using nl = Netlink.open(`/run/netns/${rig.nodes[i].ns}`);
  return nl.getLink(name) !== null;
}

async function pingAll(rig: OverlayRig, pods: OverlayPod[]) {
  for (const a of pods) {
    for (const b of pods) {
      if (a === b) continue;
      assert.ok(await rig.ping(a, b.ip, 1), `ping node${a.node} ${a.ip} -> node${b.node} ${b.ip}`);
    }
  }
}

/** What node `i`'s underlay should route: every other node's subnet via its address. */
async function wantRoutes(rig: OverlayRig, i: number): Promise<string[]> {
  return (await rig.leases()).filter((l) => l.node !== rig.nodes[i].name)
    .map((l) => `${l.subnetText} via ${l.publicIp}`).sort();
}

Deno.test({
  name: "cluster network host-gw: 3 nodes on one bridge, pods reach each other by route via " +
    "the peer node (no VTEP, the underlay's MTU); a peer off the segment is refused by name; " +
    "a node that leaves has its route removed from the others",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({
      nodes: 3,
      tag: "g",
      underlayBase: "10.168",
      network: NETWORK,
      conf: { backend: "host-gw", leaseTtlSec: 30, resyncSec: 60 },
    });
    for (let i = 0; i < 3; i++) await rig.startAgent(i);
    const pods = [await rig.addPod(0), await rig.addPod(1), await rig.addPod(2)];
    const leases = await rig.leases();
    assert.equal(leases.length, 3);
    assert.ok(
      leases.every((l) => l.backendType === "host-gw"),
      leases.map((l) => l.backendType).join(),
    );
    const config = await rig.client.range(`${PREFIX}/config`);
    assert.deepEqual(JSON.parse(config.kvs[0].value).Backend, { Type: "host-gw" });
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(routesOf(rig, i), await wantRoutes(rig, i), `node${i}'s routes`);
      assert.equal(routesOf(rig, i).length, 2);
      assert.ok(!linkExists(rig, i, "podplex.1"), `node${i} has no VTEP under host-gw`);
      const s = await rig.state(i);
      assert.equal(s?.backend, "host-gw");
      assert.equal(s?.mtu, 1500, "no encapsulation: the underlay's MTU");
    }
    await pingAll(rig, pods);
    // Pod to pod is routed, not NATed: the receiver sees the sender's pod address.
    assert.equal(await rig.sourceSeen(pods[0].ns, pods[2].ns, pods[2].ip), pods[0].ip);

    // `podplex net nodes` says host-gw and finds each peer's route on this node.
    const nodes = await rig.podplex(0, "net", "nodes", "--config", rig.nodes[0].podplexConf);
    assert.equal(nodes.code, 0, nodes.err);
    assert.match(nodes.out, /, host-gw, 3 node\(s\)/);
    assert.match(nodes.out, /node1 .* yes/);
    assert.match(nodes.out, /node2 .* yes/);

    // A host-gw lease whose PublicIP is on another segment: refused by name, never routed.
    const off = `${PREFIX}/subnets/10.167.200.0-24`;
    await rig.client.put(
      off,
      JSON.stringify({ PublicIP: "10.99.0.9", BackendType: "host-gw", PodplexNode: "far" }),
    );
    const told = await rig.until(
      async () =>
        /refused: host-gw cannot reach 10\.167\.200\.0\/24 of node "far": its PublicIP 10\.99\.0\.9 is not/
          .test(await rig.log(0)),
      10000,
    );
    assert.ok(told >= 0, `node0 names the refused peer: ${await rig.log(0)}`);
    assert.ok(!routesOf(rig, 0).some((r) => r.startsWith("10.167.200.0/24")));
    await rig.client.delete(off);

    // Node 2 leaves: its lease goes, the others drop its route.
    const s2 = (await rig.state(2))!;
    await rig.stopAgent(2);
    await rig.client.leaseRevoke(s2.leaseId);
    const gone = await rig.until(
      () => [0, 1].every((i) => !routesOf(rig, i).some((r) => r.startsWith(s2.subnet))),
      10000,
    );
    assert.ok(gone >= 0, `node2's route stayed: ${routesOf(rig, 0)}`);
    assert.deepEqual(routesOf(rig, 0), await wantRoutes(rig, 0));
    assert.ok(await rig.ping(pods[0], pods[1].ip, 1));
  },
});

Deno.test({
  name: "cluster network vxlan DirectRouting: two nodes on one segment route to each other " +
    "directly, the third (beyond a router netns) is reached over VXLAN; pods ping across both",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({
      nodes: 2,
      tag: "g",
      underlayBase: "10.168",
      network: NETWORK,
      conf: { directRouting: true, leaseTtlSec: 30, resyncSec: 60 },
    });
    await rig.addRoutedNode();
    for (let i = 0; i < 3; i++) await rig.startAgent(i);
    const pods = [await rig.addPod(0), await rig.addPod(1), await rig.addPod(2)];
    const config = await rig.client.range(`${PREFIX}/config`);
    assert.equal(JSON.parse(config.kvs[0].value).Backend.DirectRouting, true);
    const leases = await rig.leases();
    const by = (i: number) => leases.find((l) => l.node === rig.nodes[i].name)!;
    const route = (i: number) => `${by(i).subnetText} via ${rig.nodes[i].ip}`;
    // On the shared segment: a route via the peer, no VTEP entries for it.
    assert.deepEqual(routesOf(rig, 0), [route(1)]);
    assert.deepEqual(routesOf(rig, 1), [route(0)]);
    for (const i of [0, 1]) {
      const vx = rig.overlay(i);
      assert.deepEqual(
        vx.routes,
        [`${by(2).subnetText} via ${by(2).subnetText!.split("/")[0]}`],
        `node${i}: only node2 over VXLAN`,
      );
      assert.deepEqual(vx.fdb, [`${by(2).vtepMac} dst ${rig.nodes[2].ip}`]);
    }
    // Beyond the router: everything over VXLAN.
    assert.deepEqual(routesOf(rig, 2), []);
    assert.deepEqual(rig.overlay(2), rig.expected(2, leases));
    assert.equal(rig.overlay(2).routes.length, 2);
    await pingAll(rig, pods);
  },
});
