/**
 * Nodes racing for subnets as processes against one etcd: every node (a netns, no daemon)
 * ADDs a pod at the same moment, so every `bin/podplex` joins its node concurrently. No two
 * nodes may get the same subnet; a node's next ADD keeps its subnet and brings its VTEP up to
 * every node that joined meanwhile.
 *
 * 20 nodes in a /19 of /24s (31 subnets to pick from at random, so picks collide and
 * transactions are lost). CI: two rounds. PODPLEX_LONG=1: four, the third and fourth after
 * every node lost its state file (the lease in etcd, found by node name, keeps the subnet).
 */
import assert from "node:assert/strict";
import { haveEtcd } from "./etcd_server.ts";
import { OverlayRig } from "./_overlay_rig.ts";
import { isRoot, ppName, run } from "./testutils.ts";

const ignore = !isRoot || !haveEtcd();
const LONG = Deno.env.get("PODPLEX_LONG") === "1";
const NODES = 20;
const ROUNDS = LONG ? 4 : 2;

/** One pod ADD on every node at once; the pods' addresses by node. */
async function addEverywhere(rig: OverlayRig): Promise<string[]> {
  const pods = await Promise.all(rig.nodes.map(async (n) => {
    const ns = ppName("fp");
    await run("ip", "netns", "add", ns);
    const pod = { id: `ppf${ns.slice(4)}r${n.index}`, ns, node: n.index, ip: "" };
    rig.pods.push(pod);
    return pod;
  }));
  const outcomes = await Promise.all(pods.map((p) => rig.cni("ADD", p, p.node)));
  return outcomes.map((o, i) => {
    assert.equal(o.code, 0, `ADD on node${i}: ${o.text}${o.stderr}`);
    const ip = ((o.json?.ips ?? []) as Array<{ address: string }>)[0].address.split("/")[0];
    pods[i].ip = ip;
    return ip;
  });
}

Deno.test({
  name: `cluster network: ${NODES} nodes racing for subnets (one process each) never share one; ` +
    "their next ADDs keep them and see every node",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({
      nodes: NODES,
      network: "10.208.0.0/19",
      conf: { etcdTimeoutMs: 10000 }, // 20 joins at once on a loaded machine
    });
    const rounds = ROUNDS;
    let first: string[] = [];
    for (let round = 1; round <= rounds; round++) {
      if (round >= 3) {
        for (const n of rig.nodes) await Deno.remove(`${n.stateDir}/node.json`);
      }
      const t0 = performance.now();
      await addEverywhere(rig);
      const ms = performance.now() - t0;
      const leases = await rig.leases();
      const subnets = await Promise.all(
        rig.nodes.map(async (n) => (await rig.state(n.index))!.subnet),
      );
      assert.equal(leases.length, NODES, "one lease per node");
      assert.equal(new Set(subnets).size, NODES, `no shared subnet: ${subnets.join(" ")}`);
      assert.equal(new Set(leases.map((l) => l.subnetText)).size, NODES);
      for (const l of leases) assert.equal(subnets[Number(l.node!.slice(4))], l.subnetText);
      if (round === 1) first = subnets;
      else assert.deepEqual(subnets, first, `round ${round}: every node kept its subnet`);
      console.log(
        `overlay figure: race round ${round}: ${NODES} concurrent ADDs in ${ms.toFixed(0)} ms`,
      );
    }
    // After a full round every node has listed every other: exact everywhere, and reachable.
    const leases = await rig.leases();
    for (const n of rig.nodes) {
      assert.deepEqual(rig.overlay(n.index), rig.expected(n.index, leases), `node${n.index}`);
    }
    const last = rig.pods.slice(-NODES);
    for (const p of last.slice(1)) assert.ok(await rig.ping(last[0], p.ip, 1), `ping ${p.ip}`);
  },
});
