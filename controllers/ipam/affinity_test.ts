import assert from "node:assert/strict";
import { haveEtcd, startEtcd } from "../../tests/etcd_server.ts";
import { tempDir } from "../../tests/testutils.ts";
import { EtcdClient } from "../../clients/etcd/client.ts";
import { ctxFor } from "../../delegates/ipam/host_local/_testutil.ts";
import { clusterAdd, whereabouts } from "../../delegates/ipam/cluster/cluster.ts";
import { readSpaces } from "../../delegates/ipam/cluster/reconcile.ts";
import { startNodeAffinity } from "./affinity.ts";

// A real etcd (no root needed): the claims' leases are etcd's own.
const ignore = !haveEtcd();

function conf(endpoint: string, dir: string, node: string, range = "10.203.20.0/24") {
  return {
    cniVersion: "1.0.0",
    name: "ppk-aff",
    ipam: { type: "whereabouts", range, etcd_host: endpoint, dataDir: dir, node_name: node },
  };
}

async function add(raw: ReturnType<typeof conf>, id: string) {
  const r = await clusterAdd(whereabouts.parseConf(raw), ctxFor(raw, id));
  return r.ips![0].address;
}

Deno.test({
  name:
    "node affinity: claims live under the daemon's lease, are re-attached, and go when it expires",
  ignore,
  async fn() {
    await using etcd = await startEtcd();
    await using dir = await tempDir("ppk-af");
    const etcdc = new EtcdClient({ endpoints: etcd.endpoints });
    try {
      const a = conf(etcd.endpoints[0], dir.path, "na");
      // A claim made before any daemon: no lease.
      await add(a, "p1");
      const blk = async () => (await readSpaces(etcdc, "/podplex/ipam/v1"))[0].blocks;
      assert.equal((await blk())[0].lease, "0");
      const keeper = await startNodeAffinity({
        etcd: etcdc,
        node: "na",
        dataDir: dir.path,
        ttlSec: 2,
      });
      assert.equal((await blk())[0].lease, keeper.lease, "the existing claim is re-attached");
      assert.equal((await Deno.readTextFile(`${dir.path}/na/lease`)).trim(), keeper.lease);
      // A new claim from a CNI call goes under the lease too (another range, another block).
      const b = conf(etcd.endpoints[0], dir.path, "na", "10.203.21.0/24");
      await add(b, "p2");
      assert.deepEqual((await blk()).map((c) => c.lease), [keeper.lease, keeper.lease]);
      // Kept alive past its TTL while running.
      await new Promise((r) => setTimeout(r, 2500));
      assert.equal((await blk()).length, 2);
      await keeper.stop();
      const end = Date.now() + 6000;
      while ((await blk()).length > 0 && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.deepEqual(await blk(), [], "the claims went with the lease");
      const recs = (await readSpaces(etcdc, "/podplex/ipam/v1"))[0].records;
      assert.equal(recs.length, 2, "the addresses stay reserved");
      // The lease file is stale now: a CNI call that must claim a block claims it unleased.
      const c = conf(etcd.endpoints[0], dir.path, "na", "10.203.22.0/24");
      assert.equal(await add(c, "p3"), "10.203.22.1/24");
      assert.deepEqual((await blk()).map((x) => x.lease), ["0"]);
    } finally {
      etcdc.close();
    }
  },
});
