/**
 * podplex as the cluster network, end to end: simulated nodes (a netns each on an underlay
 * bridge, their own state and `podplex serve --cluster-network` daemon), a real etcd, pods
 * ADDed by `bin/podplex` in their node's netns through the podplex conf whose clusterNetwork
 * is a `podplex-cluster` network.
 *
 * Figures (join and leave latencies) are printed as `overlay figure: ...`.
 */
import assert from "node:assert/strict";
import { Watcher } from "../clients/etcd/watch.ts";
import { subnetsPrefix } from "../delegates/main/overlay/network.ts";
import { haveEtcd } from "./etcd_server.ts";
import { type OverlayPod, OverlayRig } from "./_overlay_rig.ts";
import { isRoot } from "./testutils.ts";

const ignore = !isRoot || !haveEtcd();
const PREFIX = "/coreos.com/network";

/** Records when each subnet key was first put and when it was deleted (test clock). */
async function keyTimes(rig: OverlayRig) {
  const put = new Map<string, number>();
  const gone = new Map<string, number>();
  const rev = (await rig.client.range(subnetsPrefix(PREFIX), { prefix: true })).revision;
  const w = new Watcher(rig.client, {
    key: subnetsPrefix(PREFIX),
    prefix: true,
    startRevision: rev + 1,
  }, {
    onEvents(events) {
      const now = performance.now();
      for (const e of events) {
        const m = e.type === "PUT" ? put : gone;
        if (!m.has(e.kv.key)) m.set(e.kv.key, now);
      }
    },
  });
  await w.ready;
  return { put, gone, close: () => w.close() };
}

/** Polls every 5 ms; resolves with the time `cond` first held (test clock), or -1 after `ms`. */
async function firstTime(cond: () => boolean, ms: number): Promise<number> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    if (cond()) return performance.now();
    await new Promise((r) => setTimeout(r, 5));
  }
  return cond() ? performance.now() : -1;
}

async function assertExact(rig: OverlayRig, nodes: number[], why: string) {
  const leases = await rig.leases();
  for (const i of nodes) {
    assert.deepEqual(rig.overlay(i), rig.expected(i, leases), `${why}: node${i}`);
  }
}

async function pingAll(rig: OverlayRig, pods: OverlayPod[]) {
  for (const a of pods) {
    for (const b of pods) {
      if (a === b) continue;
      assert.ok(await rig.ping(a, b.ip, 1), `ping node${a.node} ${a.ip} -> node${b.node} ${b.ip}`);
    }
  }
}

Deno.test({
  name: "cluster network: 3 nodes with daemons, pods reach each other by pod IP without NAT; " +
    "a 4th node joins and leaves within 2 s; an expired lease goes; a restart keeps the subnet",
  ignore,
  async fn() {
    // ipMasq on: traffic leaving the cluster network is masqueraded, pod to pod never.
    await using rig = await OverlayRig.start({
      nodes: 3,
      network: "10.208.0.0/16",
      conf: { ipMasq: true, leaseTtlSec: 4, resyncSec: 60 },
    });
    for (let i = 0; i < 3; i++) await rig.startAgent(i);
    const pods = [await rig.addPod(0), await rig.addPod(1), await rig.addPod(2)];
    const states = await Promise.all([0, 1, 2].map((i) => rig.state(i)));
    const subnets = states.map((s) => s!.subnet);
    assert.equal(new Set(subnets).size, 3, `distinct subnets ${subnets}`);
    pods.forEach((p, i) =>
      assert.ok(p.ip.startsWith(subnets[i].split(".").slice(0, 3).join(".")), p.ip)
    );
    await rig.until(async () => {
      const leases = await rig.leases();
      return [0, 1, 2].every((i) => rig.overlay(i).routes.length === 2 && leases.length === 3);
    }, 3000);
    await assertExact(rig, [0, 1, 2], "3 nodes");
    await pingAll(rig, pods);

    // No address translation pod to pod; the node's own address for traffic leaving it.
    assert.equal(await rig.sourceSeen(pods[0].ns, pods[2].ns, pods[2].ip), pods[0].ip);
    assert.equal(await rig.sourceSeen(pods[2].ns, pods[1].ns, pods[1].ip), pods[2].ip);
    assert.equal(
      await rig.sourceSeen(pods[0].ns, rig.nodes[1].ns, rig.nodes[1].ip),
      rig.nodes[0].ip,
      "a pod reaching outside the cluster network is masqueraded",
    );

    // A 4th node joins: the others' entries within 2 s of its lease appearing.
    const times = await keyTimes(rig);
    try {
      const d = await rig.addNode();
      const others = [0, 1, 2];
      const done = firstTime(() => {
        try {
          return others.every((i) => rig.overlay(i).routes.length === 3);
        } catch {
          return false;
        }
      }, 5000);
      await rig.startAgent(d.index);
      const tDone = await done;
      const key = (await rig.leases()).find((l) => l.node === d.name)!.key;
      // The test's own watcher may hear of the key after the agents did (then 0).
      await rig.until(() => times.put.has(key), 3000);
      const join = Math.max(0, tDone - times.put.get(key)!);
      assert.ok(tDone > 0 && join < 2000, `join took ${join} ms`);
      await assertExact(rig, [0, 1, 2, 3], "after the join");
      const p3 = await rig.addPod(3);
      await pingAll(rig, [pods[0], p3]);
      console.log(`overlay figure: join ${join.toFixed(0)} ms (lease put -> entries on 3 nodes)`);

      // It leaves: daemon stopped, `podplex net leave`; its entries go from the others.
      await rig.stopAgent(d.index, "SIGTERM");
      const gone = firstTime(() => others.every((i) => rig.overlay(i).routes.length === 2), 5000);
      const r = await rig.podplex(d.index, "net", "leave", "--network", d.clusterConf);
      assert.equal(r.code, 0, r.err);
      const tGone = await gone;
      await rig.until(() => times.gone.has(key), 3000);
      const leave = Math.max(0, tGone - times.gone.get(key)!);
      assert.ok(tGone > 0 && leave < 2000, `leave took ${leave} ms`);
      await assertExact(rig, [0, 1, 2], "after the leave");
      assert.equal(rig.overlay(3).routes.length, 0, "its VTEP is gone");
      console.log(`overlay figure: leave ${leave.toFixed(0)} ms (lease revoked -> entries gone)`);

      // Node 2's daemon is killed: its lease expires (TTL 4 s), its entries go from the others.
      const key2 = (await rig.leases()).find((l) => l.node === "node2")!.key;
      const tKill = performance.now();
      await rig.stopAgent(2, "SIGKILL");
      const expired = await firstTime(
        () => [0, 1].every((i) => rig.overlay(i).routes.length === 1),
        10000,
      );
      assert.ok(expired > 0, "node2's entries went after its lease expired");
      await rig.until(() => times.gone.has(key2), 3000);
      assert.ok(times.gone.has(key2), "etcd deleted node2's key");
      console.log(
        `overlay figure: expiry ${
          (times.gone.get(key2)! - tKill).toFixed(0)
        } ms (kill -> key gone, ` +
          `TTL 4 s), ${Math.max(0, expired - times.gone.get(key2)!).toFixed(0)} ms (key gone -> ` +
          `entries gone)`,
      );
      await assertExact(rig, [0, 1], "after the expiry");

      // Node 1 restarted: same subnet, same lease (renewed, not rewritten).
      const before = (await rig.state(1))!;
      await rig.stopAgent(1, "SIGTERM");
      await rig.startAgent(1);
      const after = (await rig.state(1))!;
      assert.equal(after.subnet, before.subnet);
      assert.equal(after.leaseId, before.leaseId);
      assert.match(await rig.log(1), /holds .* \(kept, lease/);
      await assertExact(rig, [0, 1], "after the restart");
      await pingAll(rig, [pods[0], pods[1]]);
    } finally {
      await times.close();
    }
  },
});

Deno.test({
  name: "cluster network without a daemon: a node's ADD joins it and programs every other " +
    "node from one list; a node that joined later is there at its next ADD",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({ nodes: 3, network: "10.209.0.0/16" });
    await rig.startAgent(0);
    const a = await rig.addPod(1); // no daemon on node1: the ADD joins
    const s1 = (await rig.state(1))!;
    assert.ok(s1.leaseId);
    await assertExact(rig, [0, 1], "node1 joined by its ADD");
    const p0 = await rig.addPod(0);
    await pingAll(rig, [a, p0]);
    const b = await rig.addPod(2); // node2 joins later: node1 does not know it yet
    assert.equal(rig.overlay(1).routes.length, 1, "node1 has no daemon to hear of node2");
    assert.ok(!(await rig.ping(b, a.ip, 1)), "node1 cannot answer node2 yet");
    const a2 = await rig.addPod(1); // node1's next ADD brings it up to date
    await assertExact(rig, [0, 1, 2], "after node1's next ADD");
    assert.equal((await rig.state(1))!.subnet, s1.subnet, "the same subnet at every ADD");
    await pingAll(rig, [a, a2, b, p0]);
    // DEL releases the address and keeps the node's subnet.
    const del = await rig.cni("DEL", a, 1);
    assert.equal(del.code, 0, del.text);
    assert.ok(!(await rig.ping(b, a.ip, 1)));
    const nodes = await rig.podplex(0, "net", "nodes", "--config", rig.nodes[0].podplexConf);
    assert.equal(nodes.code, 0, nodes.err);
    assert.match(nodes.out, /node0 \(this node\)/);
    for (const s of [s1.subnet]) assert.ok(nodes.out.includes(s), nodes.out);
    assert.match(nodes.out, /node1 .* yes/);
    // etcd gone and no daemon: the ADD is code 11 within the bound and leaves nothing.
    await rig.etcd.kill(0);
    const ns = (await rig.addNode()).ns; // a node that never joined
    const pod = { id: "ppfdown0", ns: await rig.addPodNetns(), node: 3, ip: "" };
    const down = await rig.cni("ADD", pod, 3);
    assert.equal(down.code, 1, down.text);
    assert.equal(down.json?.code, 11, down.text);
    assert.match(String(down.json?.msg), /etcd did not answer/);
    assert.equal(await rig.linkCount(pod.ns), 1, "only lo in the pod");
    assert.equal(await rig.linkCount(ns), 2, "only lo and eth0 on the node: no VTEP, no bridge");
  },
});
