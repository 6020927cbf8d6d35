/**
 * The node agents through etcd trouble: an etcd restarted under running agents, and a watch
 * broken while the cluster changed and its history was compacted (the agent must re-list and
 * replace what it knew). After each, every node's VTEP entries are compared with the leases.
 */
import assert from "node:assert/strict";
import { haveEtcd } from "./etcd_server.ts";
import { OverlayRig } from "./_overlay_rig.ts";
import { isRoot } from "./testutils.ts";

const ignore = !isRoot || !haveEtcd();

async function exact(rig: OverlayRig, nodes: number[]): Promise<boolean> {
  const leases = await rig.leases();
  return nodes.every((i) =>
    JSON.stringify(rig.overlay(i)) === JSON.stringify(rig.expected(i, leases))
  );
}

async function assertExact(rig: OverlayRig, nodes: number[], why: string) {
  const leases = await rig.leases();
  for (const i of nodes) {
    assert.deepEqual(rig.overlay(i), rig.expected(i, leases), `${why}: node${i}`);
  }
}

Deno.test({
  name: "cluster network: etcd restarted under running agents; they keep their leases, and a " +
    "node joining after it reaches all of them",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({ nodes: 2, network: "10.209.0.0/16" });
    for (let i = 0; i < 2; i++) await rig.startAgent(i);
    const before = await rig.leases();
    await rig.etcd.kill(0);
    await new Promise((r) => setTimeout(r, 1000));
    await rig.etcd.restart(0);
    const tUp = performance.now();
    const after = await rig.leases();
    assert.deepEqual(
      after.map((l) => `${l.node} ${l.subnetText} ${l.leaseId}`).sort(),
      before.map((l) => `${l.node} ${l.subnetText} ${l.leaseId}`).sort(),
      "the leases survived the restart",
    );
    const n2 = await rig.addNode();
    await rig.startAgent(n2.index);
    const waited = await rig.until(() => exact(rig, [0, 1, 2]), 5000);
    assert.ok(waited >= 0, "the agents heard of node2 after the restart");
    await assertExact(rig, [0, 1, 2], "after the etcd restart");
    console.log(
      `overlay figure: etcd restart -> node2 on every node ${
        (performance.now() - tUp).toFixed(0)
      } ms`,
    );
    const [a, b] = [await rig.addPod(0), await rig.addPod(2)];
    assert.ok(await rig.ping(a, b.ip, 2));
  },
});

Deno.test({
  name: "cluster network: a node's watch broken while a node joined, one left and etcd " +
    "compacted the history; it re-lists and its entries are exactly the leases again",
  ignore,
  async fn() {
    // node0 talks to member 0 only; the others to members 1 and 2.
    await using rig = await OverlayRig.start({
      nodes: 3,
      members: 3,
      network: "10.210.0.0/16",
      endpointsOf: (i) => (i === 0 ? [0] : [1, 2]),
    });
    for (let i = 0; i < 3; i++) await rig.startAgent(i);
    // node2's lease reaches node0 through member 0 a moment after node2 joined.
    await rig.until(() => exact(rig, [0, 1, 2]), 3000);
    await assertExact(rig, [0, 1, 2], "3 nodes");
    await rig.etcd.kill(0); // node0's watch is broken now
    const n3 = await rig.addNode();
    await rig.startAgent(n3.index);
    const s2 = (await rig.state(2))!;
    await rig.stopAgent(2);
    const left = await rig.podplex(2, "net", "leave", "--network", rig.nodes[2].clusterConf);
    assert.equal(left.code, 0, left.err);
    const rev = (await rig.client.range("/", { prefix: true, keysOnly: true, limit: 1 })).revision;
    await rig.client.call("/v3/kv/compaction", { revision: String(rev), physical: true });
    await rig.until(() => exact(rig, [1, 3]), 3000);
    await assertExact(rig, [1, 3], "the nodes that still reach etcd");
    const stale = rig.overlay(0);
    assert.ok(stale.routes.some((r) => r.startsWith(s2.subnet)), "node0 still routes to node2");
    assert.equal(stale.routes.length, 2, "node0 knows nothing of the changes yet");
    assert.ok(!(await exact(rig, [0])), "node0 is out of date while cut off");

    await rig.etcd.restart(0);
    const waited = await rig.until(() => exact(rig, [0, 1, 3]), 8000);
    assert.ok(waited >= 0, `node0 caught up: ${await rig.log(0)}`);
    await assertExact(rig, [0, 1, 3], "after the resync");
    assert.match(await rig.log(0), /resynced from a full list: 3 lease\(s\)/);
    console.log(
      `overlay figure: broken watch -> exact again ${waited.toFixed(0)} ms after etcd came back`,
    );
    const [a, b] = [await rig.addPod(0), await rig.addPod(3)];
    assert.ok(await rig.ping(a, b.ip, 2));
  },
});
