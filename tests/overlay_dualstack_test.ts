/**
 * podplex's cluster network in dual stack and IPv6 only, end to end on real netns: simulated
 * nodes on an underlay bridge with IPv4 and IPv6 addresses, a real etcd (ports 23950-23979),
 * the agents of `podplex serve --cluster-network`, pods ADDed by `bin/podplex`. The IPv4
 * VTEP `podplex.1` runs over the IPv4 underlay, the IPv6 one `podplex-v6.1` over the IPv6
 * underlay (flannel's `flannel.1` and `flannel-v6.1`).
 *
 * Names start with `ppg`; the underlay is 10.231.<r>.0/24 and fd31:0:<r>::/64, the pods
 * 10.232.0.0/16 and fd32:0:1::/56 (fd32:0:2::/56 in the IPv6-only cluster).
 */
import assert from "node:assert/strict";
import { OverlayRig } from "./_overlay_rig.ts";
import { startFakeKubeApi } from "./k8s_fake_server.ts";
import { haveEtcd } from "./etcd_server.ts";
import { assertExact, BASE, kernelAddrs, pingAll, routesReach, v4, v6 } from "./_dualstack.ts";
import { tcp } from "./_net_probe.ts";
import { ipJson, isRoot, run } from "./testutils.ts";

const ignore = !isRoot || !haveEtcd();
const PREFIX = "/coreos.com/network";

Deno.test({
  name: "cluster network in dual stack: 3 nodes on VXLAN over both underlays, pods get one " +
    "address per family and reach each other over both (ping, TCP); one node leaves and both " +
    "families' entries go from the others",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({
      ...BASE,
      nodes: 3,
      conf: { leaseTtlSec: 30, resyncSec: 60 },
    });
    for (let i = 0; i < 3; i++) await rig.startAgent(i);
    const pods = [await rig.addPod(0), await rig.addPod(1), await rig.addPod(2)];
    const leases = await rig.leases();
    assert.equal(leases.length, 3);
    for (const [i, p] of pods.entries()) {
      const l = leases.find((x) => x.node === rig.nodes[i].name)!;
      assert.equal(l.publicIp, rig.nodes[i].ip);
      assert.equal(l.publicIpv6, rig.nodes[i].ip6);
      assert.ok(l.subnet6Text?.startsWith("fd32:0:1:"), l.key);
      // One address of each family in the CNI result, in the lease's subnets, and on eth0.
      assert.equal(p.ips?.length, 2, `node${i}'s pod: ${p.ips}`);
      const a4 = v4(p)!, a6 = v6(p)!;
      assert.ok(a4.startsWith(l.subnetText!.split(".").slice(0, 3).join(".")), a4);
      assert.ok(a6.startsWith(l.subnet6Text!.replace(/::\/64$/, ":")), `${a6} in ${l.key}`);
      const kernel = await kernelAddrs(p);
      assert.equal(kernel.length, 2, `eth0 of node${i}'s pod: ${kernel}`);
      assert.ok(
        kernel.some((k) => k.startsWith(`${a4}/`)) && kernel.some((k) => k.startsWith(`${a6}/`)),
      );
    }
    await routesReach(rig, [0, 1, 2], [4, 6], 2);
    await assertExact(rig, [0, 1, 2], [4, 6], "3 nodes");
    // `net nodes` and `graph` show both families of every node.
    const conf = rig.nodes[0].podplexConf;
    const nodes = await rig.podplex(0, "net", "nodes", "--config", conf);
    const graph = await rig.podplex(0, "graph", "--config", conf);
    assert.equal(nodes.code + graph.code, 0, nodes.err + graph.err);
    for (const l of leases) {
      assert.ok(nodes.out.includes(`${l.subnetText}, ${l.subnet6Text}`), nodes.out);
      assert.ok(nodes.out.includes(`${l.publicIp}, ${l.publicIpv6}`), nodes.out);
      assert.ok(graph.out.includes(`${l.subnetText} ${l.subnet6Text}`), graph.out);
      assert.ok(graph.out.includes(`"${l.publicIp} ${l.publicIpv6}"`), graph.out);
    }
    // The IPv6 VTEP's FDB points at the peers' IPv6 underlay addresses.
    const fdb6 = rig.overlay(0, undefined, 6).fdb.join(" ");
    for (const n of rig.nodes.slice(1)) assert.ok(fdb6.includes(`dst ${n.ip6}`), fdb6);

    await pingAll(rig, pods, [4, 6]);
    for (const [a, b] of [[0, 1], [1, 2], [2, 0]]) {
      for (const ip of [v4(pods[b])!, v6(pods[b])!]) {
        // No translation pod to pod: the server sees the client pod's own address.
        const own = ip.includes(":") ? v6(pods[a]) : v4(pods[a]);
        assert.equal(await tcp(pods[a], pods[b], ip), `hello ${own}`, `TCP ${a} -> ${b} ${ip}`);
      }
    }

    // Node 2 leaves: its daemon stopped, `podplex net leave`; both families' entries go.
    await rig.stopAgent(2, "SIGTERM");
    const r = await rig.podplex(2, "net", "leave", "--network", rig.nodes[2].clusterConf);
    assert.equal(r.code, 0, r.err);
    await routesReach(rig, [0, 1], [4, 6], 1);
    await assertExact(rig, [0, 1], [4, 6], "after node2 left");
    assert.equal((await rig.leases()).length, 2);
    for (const f of [4, 6] as const) {
      assert.deepEqual(rig.overlay(2, undefined, f).routes, [], `node2's IPv${f} VTEP is gone`);
    }
    await pingAll(rig, pods.slice(0, 2), [4, 6]);
  },
});

Deno.test({
  name: "cluster network IPv6 only (EnableIPv4 false): 3 nodes, only podplex-v6.1, pods " +
    "with one IPv6 address ping each other across nodes",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({
      ...BASE,
      nodes: 3,
      network: null,
      ipv6Network: "fd32:0:2::/56",
      conf: { leaseTtlSec: 30, resyncSec: 60 },
    });
    for (let i = 0; i < 3; i++) await rig.startAgent(i);
    const pods = [await rig.addPod(0), await rig.addPod(1), await rig.addPod(2)];
    const config = JSON.parse((await rig.client.get(`${PREFIX}/config`))!.value);
    assert.equal(config.EnableIPv4, false, JSON.stringify(config));
    assert.equal(config.EnableIPv6, true);
    for (const l of await rig.leases()) {
      assert.match(l.key, /\/subnets\/0\.0\.0\.0-0&fd32:0:2:[0-9a-f]*::-64$/);
      assert.equal(l.subnet, undefined);
    }
    for (const p of pods) {
      assert.equal(p.ips?.length, 1, `${p.ips}`);
      assert.ok(p.ip.startsWith("fd32:0:2:"), p.ip);
      assert.equal((await kernelAddrs(p)).length, 1);
    }
    await routesReach(rig, [0, 1, 2], [6], 2);
    await assertExact(rig, [0, 1, 2], [6], "IPv6 only");
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(rig.overlay(i, undefined, 4).routes, [], `node${i}: no IPv4 VTEP`);
    }
    await pingAll(rig, pods, [6]);
    assert.equal(await tcp(pods[0], pods[2], pods[2].ip), `hello ${pods[0].ip}`);
  },
});

Deno.test({
  name: "cluster network in dual stack: a flanneld-format lease written by hand (PublicIPv6, " +
    "BackendV6Data) is read by a podplex node, which programs its IPv4 and IPv6 entries; " +
    "a flanneld node without IPv6 gets its IPv4 entries, its IPv6 part refused by name",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({
      ...BASE,
      nodes: 1,
      conf: { leaseTtlSec: 30, resyncSec: 60 },
    });
    await rig.startAgent(0);
    // What flanneld writes (pkg/subnet/etcd: key MakeSubnetKey(sn, sn6), value LeaseAttrs
    // marshalled: PublicIP, PublicIPv6, BackendType, BackendData and BackendV6Data as
    // vxlanLeaseAttrs {VNI, VtepMAC}), attached to an etcd lease of its TTL.
    const mac4 = "6a:1f:00:00:00:04", mac6 = "6a:1f:00:00:00:06";
    const pub4 = `${rig.net24}.99`, pub6 = `${rig.net64}:99`;
    const key = `${PREFIX}/subnets/10.232.200.0-24&fd32:0:1:c8::-64`;
    const value = `{"PublicIP":"${pub4}","PublicIPv6":"${pub6}","BackendType":"vxlan",` +
      `"BackendData":{"VNI":1,"VtepMAC":"${mac4}"},"BackendV6Data":{"VNI":1,"VtepMAC":"${mac6}"}}`;
    const { id } = await rig.client.leaseGrant(60);
    await rig.client.put(key, value, id);
    const want4 = {
      routes: ["10.232.200.0/24 via 10.232.200.0"],
      neighbours: [`10.232.200.0 ${mac4}`],
      fdb: [`${mac4} dst ${pub4}`],
    };
    const want6 = {
      routes: ["fd32:0:1:c8::/64 via fd32:0:1:c8::"],
      neighbours: [`fd32:0:1:c8:: ${mac6}`],
      fdb: [`${mac6} dst ${pub6}`],
    };
    const ms = await rig.until(() => rig.overlay(0, undefined, 6).routes.length === 1, 5000);
    assert.ok(ms >= 0, `no IPv6 route for the flanneld lease: ${await rig.log(0)}`);
    assert.deepEqual(rig.overlay(0, undefined, 4), want4);
    assert.deepEqual(rig.overlay(0, undefined, 6), want6);
    // A flanneld node of one family (no IPv6 underlay: PublicIPv6 null, no BackendV6Data)
    // in this dual-stack network: its IPv4 entries, its IPv6 part refused by name.
    const mac4b = "6a:1f:00:00:01:04";
    await rig.client.put(
      `${PREFIX}/subnets/10.232.201.0-24&fd32:0:1:c9::-64`,
      `{"PublicIP":"${rig.net24}.98","PublicIPv6":null,"BackendType":"vxlan",` +
        `"BackendData":{"VNI":1,"VtepMAC":"${mac4b}"}}`,
      id,
    );
    const told = await rig.until(
      async () =>
        /refused: node "10\.231\.\d+\.98" publishes no IPv6 PublicIP for fd32:0:1:c9::\/64/
          .test(await rig.log(0)),
      5000,
    );
    assert.ok(told >= 0, `node0 names the refused part: ${await rig.log(0)}`);
    assert.ok(rig.overlay(0, undefined, 4).fdb.includes(`${mac4b} dst ${rig.net24}.98`));
    assert.deepEqual(rig.overlay(0, undefined, 6), want6, "no IPv6 entries for it");
    // They go (flanneld's etcd lease revoked): both families' entries go.
    await rig.client.leaseRevoke(id);
    await routesReach(rig, [0], [4, 6], 0);
    assert.deepEqual(rig.overlay(0, undefined, 6).fdb, []);
    assert.deepEqual(rig.overlay(0, undefined, 4).fdb, []);
  },
});

Deno.test({
  name: "cluster network in dual stack: a restarted agent keeps both subnets and its lease; " +
    "IPv6 entries deleted behind its back come back at the resync; a killed node's lease " +
    "expires and both families' entries go",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({
      ...BASE,
      nodes: 2,
      conf: { leaseTtlSec: 3, resyncSec: 1 },
    });
    for (let i = 0; i < 2; i++) await rig.startAgent(i);
    await routesReach(rig, [0, 1], [4, 6], 1);
    const before = (await rig.state(1))!;
    await rig.stopAgent(1, "SIGTERM");
    await rig.startAgent(1);
    const after = (await rig.state(1))!;
    assert.deepEqual([after.subnet, after.subnet6], [before.subnet, before.subnet6]);
    assert.equal(after.leaseId, before.leaseId, "the lease renewed, not taken again");
    await assertExact(rig, [0, 1], [4, 6], "after the restart");

    // node0's IPv6 route and FDB entry for node1 removed by hand: back within a resync or two.
    const n0 = rig.nodes[0].ns;
    const want = rig.overlay(0, undefined, 6);
    const [dst] = want.routes[0].split(" ");
    await run("ip", "-n", n0, "-6", "route", "del", dst, "dev", "podplex-v6.1");
    const [mac, , ip] = want.fdb[0].split(" ");
    await run("bridge", "-n", n0, "fdb", "del", mac, "dev", "podplex-v6.1", "dst", ip);
    assert.equal(rig.overlay(0, undefined, 6).routes.length, 0);
    const back = await rig.until(() =>
      rig.overlay(0, undefined, 6).fdb.length === 1 &&
      rig.overlay(0, undefined, 6).routes.length === 1, 5000);
    assert.ok(back >= 0, "the resync put node1's IPv6 entries back");
    assert.deepEqual(rig.overlay(0, undefined, 6), want);

    // Killed: no leave, its lease expires (TTL 3 s); both families' entries go from node0.
    await rig.stopAgent(1, "SIGKILL");
    const gone = await rig.until(
      () => [4, 6].every((f) => rig.overlay(0, undefined, f as 4 | 6).routes.length === 0),
      10000,
    );
    assert.ok(gone >= 0, "node1's entries went after its lease expired");
    for (const f of [4, 6] as const) {
      assert.deepEqual(rig.overlay(0, undefined, f), { routes: [], neighbours: [], fdb: [] });
    }
    assert.equal((await rig.leases()).length, 1);
  },
});

Deno.test({
  name: "cluster network IPv6 only on an IPv6-only underlay: nodes without an IPv4 address " +
    "reach etcd over IPv6, lease PublicIP 0.0.0.0 + PublicIPv6, and their pods ping6 across",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({
      ...BASE,
      nodes: 2,
      underlay6Only: true,
      network: null,
      ipv6Network: "fd32:0:6::/56",
      conf: { leaseTtlSec: 30, resyncSec: 60 },
    });
    const conf = JSON.parse(await Deno.readTextFile(rig.nodes[0].clusterConf));
    assert.match(conf.etcdEndpoints[0], /^http:\/\/\[fd31:0:[0-9a-f]+::1\]:\d+$/);
    for (let i = 0; i < 2; i++) await rig.startAgent(i);
    const pods = [await rig.addPod(0), await rig.addPod(1)];
    for (const [i, n] of rig.nodes.entries()) {
      const l = (await rig.leases()).find((x) => x.node === n.name)!;
      assert.equal(l.publicIp, "0.0.0.0", l.key);
      assert.equal(l.publicIpv6, n.ip6);
      assert.equal(
        await ipJson(n.ns, "-4", "addr", "show", "dev", "eth0").then((a) =>
          (a[0]?.addr_info as unknown[] ?? []).length
        ),
        0,
        `node${i}'s eth0 has no IPv4 address`,
      );
    }
    await routesReach(rig, [0, 1], [6], 1);
    await assertExact(rig, [0, 1], [6], "IPv6-only underlay");
    await pingAll(rig, pods, [6]);
    assert.equal(await tcp(pods[1], pods[0], pods[0].ip), `hello ${pods[1].ip}`);
  },
});

Deno.test({
  name: "cluster network in dual stack: the pod's network-status on the API server has both " +
    "of eth0's addresses; CHECK passes and DEL releases both",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({ ...BASE, nodes: 1 });
    await using api = await startFakeKubeApi({ hostname: rig.hostIp });
    await rig.writeKubeconfigs(api.url);
    const n = rig.nodes[0];
    const list = JSON.parse(await Deno.readTextFile(n.podplexConf));
    list.plugins[0].kubeconfig = `${n.dir}/kubeconfig`;
    await Deno.writeTextFile(n.podplexConf, JSON.stringify(list));
    const pod = { id: "ppgstatus0", ns: await rig.addPodNetns() };
    api.addPod("default", pod.id);
    const r = await rig.cni("ADD", pod, 0);
    assert.equal(r.code, 0, r.text + r.stderr);
    const ips = (r.json!.ips as Array<{ address: string }>).map((a) => a.address.split("/")[0]);
    assert.equal(ips.length, 2, `${ips}`);
    const status = JSON.parse(
      api.pods.get(`default/${pod.id}`)!.annotations["k8s.v1.cni.cncf.io/network-status"],
    );
    assert.equal(status[0].interface, "eth0", JSON.stringify(status));
    assert.deepEqual([...status[0].ips].sort(), [...ips].sort());
    // CHECK and DEL in dual stack: both addresses checked, then released (host-local's files).
    const check = await rig.cni("CHECK", pod, 0);
    assert.equal(check.code, 0, check.text + check.stderr);
    const leased = async () => {
      const out: string[] = [];
      for await (const d of Deno.readDir(`${n.dir}/leases`)) {
        for await (const f of Deno.readDir(`${n.dir}/leases/${d.name}`)) {
          if (/^[0-9a-f.:]+$/.test(f.name) && f.name.includes(".") !== f.name.includes(":")) {
            out.push(f.name);
          }
        }
      }
      return out.sort();
    };
    assert.deepEqual(await leased(), [...ips].sort());
    const del = await rig.cni("DEL", pod, 0);
    assert.equal(del.code, 0, del.text + del.stderr);
    assert.deepEqual(await leased(), []);
    assert.equal(await rig.linkCount(pod.ns), 1, "only lo left in the pod");
  },
});
