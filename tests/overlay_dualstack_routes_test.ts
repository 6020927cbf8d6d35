/**
 * podplex's cluster network in dual stack without encapsulation, and with its subnets from
 * the API server: host-gw (3 nodes on one bridge, masquerade in both families), vxlan
 * DirectRouting (two nodes on one segment, one beyond a router netns) and kubeSubnetMgr
 * (both spec.podCIDRs of a Node in one lease), on real netns with a real etcd and the agents
 * of `podplex serve --cluster-network`.
 *
 * Names start with `ppg`; the underlay is 10.231.<r>.0/24 and fd31:0:<r>::/64 (the segment
 * beyond the router <r+1>), the pods 10.232.0.0/16 and fd32:0:1::/56 (fd32:0:5::/56 with
 * kubeSubnetMgr); etcd on ports 23950-23979.
 */
import assert from "node:assert/strict";
import { OverlayRig } from "./_overlay_rig.ts";
import { haveEtcd } from "./etcd_server.ts";
import { startFakeKubeApi } from "./k8s_fake_server.ts";
import { Netlink } from "../ffi/mod.ts";
import { assertExact, BASE, pingAll, routesOf, routesReach, v4, v6 } from "./_dualstack.ts";
import { isRoot } from "./testutils.ts";

const ignore = !isRoot || !haveEtcd();

Deno.test({
  name: "cluster network host-gw in dual stack: 3 nodes on one bridge route each other's " +
    "IPv4 and IPv6 subnets via their underlay addresses (no VTEP); pods ping over both; " +
    "ipMasq masquerades both families leaving the cluster network, pod to pod never",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({
      ...BASE,
      nodes: 3,
      conf: { backend: "host-gw", ipMasq: true, leaseTtlSec: 30, resyncSec: 60 },
    });
    for (let i = 0; i < 3; i++) await rig.startAgent(i);
    const pods = [await rig.addPod(0), await rig.addPod(1), await rig.addPod(2)];
    const routes = (i: number, f: 4 | 6) => routesOf(rig, i, f);
    const leases = await rig.leases();
    const want = (i: number, f: 4 | 6) =>
      leases.filter((l) => l.node !== rig.nodes[i].name).map((l) =>
        f === 4 ? `${l.subnetText} via ${l.publicIp}` : `${l.subnet6Text} via ${l.publicIpv6}`
      ).sort();
    const ms = await rig.until(
      () => [0, 1, 2].every((i) => routes(i, 4).length === 2 && routes(i, 6).length === 2),
      5000,
    );
    assert.ok(ms >= 0, "every node routes the others' subnets in both families");
    for (let i = 0; i < 3; i++) {
      for (const f of [4, 6] as const) assert.deepEqual(routes(i, f), want(i, f), `node${i} v${f}`);
      using nl = Netlink.open(`/run/netns/${rig.nodes[i].ns}`);
      assert.equal(nl.getLink("podplex.1"), null, "no IPv4 VTEP with host-gw");
      assert.equal(nl.getLink("podplex-v6.1"), null, "no IPv6 VTEP with host-gw");
    }
    await pingAll(rig, pods, [4, 6]);
    for (const ip of [v4(pods[2])!, v6(pods[2])!]) {
      const own = ip.includes(":") ? v6(pods[0]) : v4(pods[0]);
      assert.equal(await rig.sourceSeen(pods[0].ns, pods[2].ns, ip), own, `pod to pod ${ip}`);
    }
    // To node1's underlay addresses (outside the cluster network): node0's own, both families.
    const n0 = rig.nodes[0], n1 = rig.nodes[1];
    assert.equal(await rig.sourceSeen(pods[0].ns, n1.ns, n1.ip), n0.ip, "IPv4 masqueraded");
    assert.equal(await rig.sourceSeen(pods[0].ns, n1.ns, n1.ip6!), n0.ip6, "IPv6 masqueraded");
  },
});

Deno.test({
  name: "cluster network vxlan DirectRouting in dual stack: two nodes on one segment route to " +
    "each other directly in both families, the third (beyond a router netns) is reached over " +
    "both VTEPs; pods ping across both over IPv4 and IPv6",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({
      ...BASE,
      nodes: 2,
      conf: { directRouting: true, leaseTtlSec: 30, resyncSec: 60 },
    });
    await rig.addRoutedNode();
    for (let i = 0; i < 3; i++) await rig.startAgent(i);
    const pods = [await rig.addPod(0), await rig.addPod(1), await rig.addPod(2)];
    const leases = await rig.leases();
    const by = (i: number) => leases.find((l) => l.node === rig.nodes[i].name)!;
    const direct = (i: number, f: 4 | 6) =>
      f === 4
        ? `${by(i).subnetText} via ${rig.nodes[i].ip}`
        : `${by(i).subnet6Text} via ${rig.nodes[i].ip6}`;
    const vxlan = (i: number, f: 4 | 6) => {
      const sn = f === 4 ? by(i).subnetText! : by(i).subnet6Text!;
      return `${sn} via ${sn.split("/")[0]}`;
    };
    const ms = await rig.until(
      () =>
        [4, 6].every((f) =>
          routesOf(rig, 0, f as 4 | 6).length === 1 &&
          rig.overlay(2, undefined, f as 4 | 6).routes.length === 2
        ),
      5000,
    );
    assert.ok(ms >= 0, "every node programmed both families");
    for (const f of [4, 6] as const) {
      // On the shared segment: a route via the peer's address of that family.
      assert.deepEqual(routesOf(rig, 0, f), [direct(1, f)], `node0 IPv${f}`);
      assert.deepEqual(routesOf(rig, 1, f), [direct(0, f)], `node1 IPv${f}`);
      for (const i of [0, 1]) {
        const vx = rig.overlay(i, undefined, f);
        assert.deepEqual(vx.routes, [vxlan(2, f)], `node${i} IPv${f}: only node2 over VXLAN`);
        const mac = f === 4 ? by(2).vtepMac : by(2).vtepMac6;
        const dst = f === 4 ? rig.nodes[2].ip : rig.nodes[2].ip6;
        assert.deepEqual(vx.fdb, [`${mac} dst ${dst}`], `node${i} IPv${f} FDB`);
      }
      // Beyond the router: everything over VXLAN.
      assert.deepEqual(routesOf(rig, 2, f), []);
      assert.deepEqual(rig.overlay(2, undefined, f), rig.expected(2, leases, 1, f));
    }
    await pingAll(rig, pods, [4, 6]);
  },
});

Deno.test({
  name: "cluster network in dual stack with kubeSubnetMgr: each node leases both of its Node's " +
    "spec.podCIDRs in one lease, in either order; pods ping over both families",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({
      ...BASE,
      nodes: 2,
      ipv6Network: "fd32:0:5::/56",
      conf: (dir) => ({ kubeSubnetMgr: true, kubeconfig: `${dir}/kubeconfig`, resyncSec: 60 }),
    });
    await using api = await startFakeKubeApi({ hostname: rig.hostIp });
    api.nodes.set("node0", ["10.232.77.0/24", "fd32:0:5:77::/64"]);
    api.nodes.set("node1", ["fd32:0:5:78::/64", "10.232.78.0/24"]);
    await rig.writeKubeconfigs(api.url);
    for (const n of rig.nodes) {
      await rig.startAgent(n.index);
    }
    for (const [i, k] of [[0, 77], [1, 78]]) {
      const s = (await rig.state(i))!;
      assert.equal(s.subnet, `10.232.${k}.0/24`);
      assert.equal(s.subnet6, `fd32:0:5:${k}::/64`);
    }
    const keys = (await rig.leases()).map((l) => l.key.replace(/^.*\/subnets\//, "")).sort();
    assert.deepEqual(keys, ["10.232.77.0-24&fd32:0:5:77::-64", "10.232.78.0-24&fd32:0:5:78::-64"]);
    const pods = [await rig.addPod(0), await rig.addPod(1)];
    await routesReach(rig, [0, 1], [4, 6], 1);
    await assertExact(rig, [0, 1], [4, 6], "kubeSubnetMgr");
    await pingAll(rig, pods, [4, 6]);
  },
});
