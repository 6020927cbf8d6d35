/**
 * The cluster network with `kubeSubnetMgr` (flannel's `--kube-subnet-mgr`): a node's subnet
 * is its Node's `spec.podCIDR` from the API server, not one won in a lease race. No
 * kube-apiserver is installable here: `tests/k8s_fake_server.ts` serves the Node objects, on
 * the rig's underlay address so that the nodes' daemons (in their netns) reach it.
 */
import assert from "node:assert/strict";
import { haveEtcd } from "./etcd_server.ts";
import { startFakeKubeApi } from "./k8s_fake_server.ts";
import { OverlayRig } from "./_overlay_rig.ts";
import { isRoot } from "./testutils.ts";

Deno.test({
  name: "cluster network with kubeSubnetMgr: each node leases its Node's podCIDR; a node " +
    "whose Node has none yet waits for it",
  ignore: !isRoot || !haveEtcd(),
  async fn() {
    await using rig = await OverlayRig.start({
      nodes: 2,
      conf: (dir) => ({ kubeSubnetMgr: true, kubeconfig: `${dir}/kubeconfig` }),
    });
    await using api = await startFakeKubeApi({ hostname: rig.hostIp });
    api.nodes.set("node0", ["10.208.77.0/24"]);
    api.nodes.set("node1", []); // the node controller has not given it one yet
    await rig.writeKubeconfigs(api.url);
    await rig.startAgent(0);
    assert.equal((await rig.state(0))?.subnet, "10.208.77.0/24");
    const agent1 = rig.startAgent(1, 30_000);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await rig.state(1), undefined, "no podCIDR: no subnet taken");
    api.nodes.set("node1", ["fd00:208::/64", "10.208.78.0/24"]);
    await agent1;
    assert.equal((await rig.state(1))?.subnet, "10.208.78.0/24", "the IPv4 one of podCIDRs");
    const leases = (await rig.leases()).map((l) => l.subnetText).sort();
    assert.deepEqual(leases, ["10.208.77.0/24", "10.208.78.0/24"]);
    assert.ok(
      api.requests.some((r) => r.path === "/api/v1/nodes/node1"),
      "the agent asked the API server for its Node",
    );
  },
});
