import assert from "node:assert/strict";
import { CniError } from "../../../conf/errors.ts";
import { haveEtcd, startEtcd } from "../../../tests/etcd_server.ts";
import { EtcdClient } from "../../../clients/etcd/client.ts";
import { configKey, type NodeAttrs } from "./network.ts";
import { acquireSubnet, readView } from "./subnets.ts";

const ignore = !haveEtcd();
const P = "/t/net";
const SEED = { network: "10.209.0.0/16", vni: 1, port: 8472 };
const PORTS: [number, number] = [23900, 23949];

function attrs(i: number, ip = `10.212.0.${10 + i}`): NodeAttrs {
  return {
    node: `n${i}`,
    publicIp: ip,
    vtepMac: `02:00:00:00:00:${(16 + i).toString(16)}`,
    vni: 1,
  };
}

async function codeOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (err) {
    if (err instanceof CniError) return err.code;
    throw err;
  }
  return 0;
}

Deno.test({
  name: "subnets: a node keeps its subnet across restarts, and gets it back after its lease",
  ignore,
  async fn() {
    await using etcd = await startEtcd({ portRange: PORTS });
    const c = new EtcdClient({ endpoints: etcd.endpoints });
    try {
      const view = await readView(c, P, SEED);
      assert.equal((await c.get(configKey(P)))?.value.includes("10.209.0.0/16"), true);
      const a = await acquireSubnet(c, P, attrs(1), { ttlSec: 30, view });
      assert.equal(a.wrote, true);
      // Restarted (same attributes): the same key, the same lease, renewed, nothing written.
      const b = await acquireSubnet(c, P, attrs(1), { ttlSec: 30 });
      assert.deepEqual([b.lease.subnetText, b.leaseId, b.wrote], [
        a.lease.subnetText,
        a.leaseId,
        false,
      ]);
      // New underlay address: same subnet, rewritten under a new lease, the old one revoked.
      const moved = await acquireSubnet(c, P, attrs(1, "10.212.0.99"), { ttlSec: 30 });
      assert.equal(moved.lease.subnetText, a.lease.subnetText);
      assert.equal(moved.lease.publicIp, "10.212.0.99");
      assert.notEqual(moved.leaseId, a.leaseId);
      assert.equal(await c.leaseTimeToLive(a.leaseId), -1);
      // The lease gone (the node was down past its TTL): its previous subnet when free.
      await c.leaseRevoke(moved.leaseId);
      assert.equal((await readView(c, P)).leases.length, 0);
      const back = await acquireSubnet(c, P, attrs(1), {
        ttlSec: 30,
        previous: [a.lease.subnetText!],
      });
      assert.equal(back.lease.subnetText, a.lease.subnetText);
      // A reused previous subnet is only taken when free: another node's is not.
      const other = await acquireSubnet(c, P, attrs(2), {
        ttlSec: 30,
        previous: [a.lease.subnetText!],
      });
      assert.notEqual(other.lease.subnetText, a.lease.subnetText);
    } finally {
      c.close();
    }
  },
});

Deno.test({
  name: "subnets: 20 nodes racing (each its own client) never get the same subnet",
  ignore,
  async fn() {
    await using etcd = await startEtcd({ portRange: PORTS });
    const seedClient = new EtcdClient({ endpoints: etcd.endpoints });
    // A /19 of /24s: 31 subnets for 20 nodes, so picks collide often and races are lost.
    await readView(seedClient, P, { ...SEED, network: "10.209.0.0/19" });
    seedClient.close();
    const clients = Array.from({ length: 20 }, () => new EtcdClient({ endpoints: etcd.endpoints }));
    try {
      const got = await Promise.all(
        clients.map((c, i) => acquireSubnet(c, P, attrs(i), { ttlSec: 30 })),
      );
      const subnets = got.map((g) => g.lease.subnetText);
      assert.equal(new Set(subnets).size, 20, `duplicates in ${subnets.join(" ")}`);
      const listed = (await readView(clients[0], P)).leases;
      assert.equal(listed.length, 20);
      assert.deepEqual(
        listed.map((l) => `${l.node} ${l.subnetText}`).sort(),
        got.map((g, i) => `n${i} ${g.lease.subnetText}`).sort(),
      );
    } finally {
      for (const c of clients) c.close();
    }
  },
});

Deno.test({
  name: "subnets: more nodes than subnets: the rest get code 103, nothing is shared",
  ignore,
  async fn() {
    await using etcd = await startEtcd({ portRange: PORTS });
    const clients = Array.from({ length: 6 }, () => new EtcdClient({ endpoints: etcd.endpoints }));
    try {
      // 10.209.8.0/22 in /24s: the first is the network's, 3 are left.
      await readView(clients[0], P, { ...SEED, network: "10.209.8.0/22", subnetLen: 24 });
      const outcomes = await Promise.allSettled(
        clients.map((c, i) => acquireSubnet(c, P, attrs(i), { ttlSec: 30 })),
      );
      const ok = outcomes.filter((o) => o.status === "fulfilled");
      const failed = outcomes.filter((o) => o.status === "rejected") as PromiseRejectedResult[];
      assert.equal(ok.length, 3);
      assert.deepEqual(failed.map((f) => (f.reason as CniError).code), [103, 103, 103]);
      assert.match((failed[0].reason as Error).message, /No free \/24 left in 10\.209\.8\.0\/22/);
      const subnets = (await readView(clients[0], P)).leases.map((l) => l.subnetText).sort();
      assert.deepEqual(subnets, ["10.209.10.0/24", "10.209.11.0/24", "10.209.9.0/24"]);
    } finally {
      for (const c of clients) c.close();
    }
  },
});

Deno.test({
  name: "subnets: a podCIDR is taken as given; another node's is code 105; a seed must agree",
  ignore,
  async fn() {
    await using etcd = await startEtcd({ portRange: PORTS });
    const c = new EtcdClient({ endpoints: etcd.endpoints });
    try {
      await readView(c, P, SEED);
      const a = await acquireSubnet(c, P, attrs(1), { ttlSec: 30, fixed: ["10.209.7.0/24"] });
      assert.equal(a.lease.subnetText, "10.209.7.0/24");
      assert.equal(
        await codeOf(acquireSubnet(c, P, attrs(2), { ttlSec: 30, fixed: ["10.209.7.0/24"] })),
        105,
      );
      assert.equal(
        await codeOf(acquireSubnet(c, P, attrs(2), { ttlSec: 30, fixed: ["10.99.0.0/24"] })),
        7,
      );
      // The node's podCIDR changed: the old key goes, the new one is taken.
      const b = await acquireSubnet(c, P, attrs(1), { ttlSec: 30, fixed: ["10.209.8.0/24"] });
      assert.equal(b.lease.subnetText, "10.209.8.0/24");
      assert.deepEqual((await readView(c, P)).leases.map((l) => l.subnetText), ["10.209.8.0/24"]);
      assert.equal(await codeOf(readView(c, P, { ...SEED, network: "10.210.0.0/16" })), 7);
      assert.equal(await codeOf(readView(c, "/t/none")), 7);
    } finally {
      c.close();
    }
  },
});
