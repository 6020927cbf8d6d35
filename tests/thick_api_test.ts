/**
 * The thick daemon with the Kubernetes API (tests/k8s_fake_server.ts stands in for
 * kube-apiserver, none is installable here): with a node name, this node's pods and the
 * NADs are watched, so once the caches are live an ADD reads its pod's annotations and its
 * NADs with no GET (only the network-status PATCH goes out); a rotated kubeconfig (a new
 * token) is picked up by the next call without a restart, its watches with it.
 */
import assert from "node:assert/strict";
import { isRoot, tempNetns, type TestNetns } from "./testutils.ts";
import { thickNode } from "./_thick_rig.ts";
import { startFakeKubeApi } from "./k8s_fake_server.ts";

function kubeconfig(url: string, token: string): string {
  return `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${url}"}}]\n` +
    `users: [{name: u, user: {token: ${token}}}]\n` +
    `contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`;
}

const NETWORKS = "k8s.v1.cni.cncf.io/networks";

Deno.test({
  name:
    "thick: pods and NADs come from the watch (no GET per ADD); a rotated kubeconfig is picked up",
  ignore: !isRoot,
  async fn() {
    const auth = { token: "t1" };
    await using api = await startFakeKubeApi(auth);
    const kcPath = (dir: string) => `${dir}/etc/cni/net.d/podplex.d/podplex.kubeconfig`;
    await using node = await thickNode({ networks: 1, offset: 120, conf: { kubeconfig: "@KC@" } });
    const kc = kcPath(node.dir);
    await Deno.mkdir(kc.replace(/\/[^/]+$/, ""), { recursive: true });
    await Deno.writeTextFile(kc, kubeconfig(api.url, "t1"));
    node.conflist = node.conflist.replace("@KC@", kc);
    await Deno.writeTextFile(`${node.confDir}/00-podplex.conflist`, node.conflist);
    const lan = (i: number) =>
      JSON.stringify({
        cniVersion: "1.0.0",
        type: "bridge",
        bridge: `${node.bridges[0]}`,
        ipam: { type: "host-local", subnet: `10.211.${121 + i}.0/24`, dataDir: node.dataDir },
      });
    api.addNad("default", "lan0", lan(0));
    api.addNad("default", "lan1", lan(1));
    await using d = await node.startDaemon(["--node-name", "node-1"]);
    const pods: TestNetns[] = [];
    try {
      for (let i = 0; i < 4; i++) pods.push(await tempNetns("t"));
      const add = async (i: number) => {
        api.addPod("default", `p${i}`, { [NETWORKS]: `lan${i % 2}` }, "node-1");
        const r = await node.pod("ADD", { netns: pods[i].path, id: `ppt-api-${i}`, name: `p${i}` });
        assert.equal(r.code, 0, `ADD ${i}: ${r.stdout}`);
        assert.equal(JSON.parse(r.stdout).ips.length, 2, "eth0 and net1");
      };
      await add(0); // the first call makes the client: its watches start now
      // Both watches (pods, NADs) run once their LISTs are in.
      for (let i = 0; api.requests.filter((r) => /watch=1/.test(r.query)).length < 2; i++) {
        if (i > 200) throw new Error("no watch started");
        await new Promise((r) => setTimeout(r, 20));
      }
      const before = api.requests.length;
      await add(1);
      await add(2);
      const made = api.requests.slice(before).filter((r) => !/watch=1/.test(r.query));
      assert.deepEqual(
        made.map((r) => `${r.method} ${r.path}`),
        [
          "PATCH /api/v1/namespaces/default/pods/p1/status",
          "PATCH /api/v1/namespaces/default/pods/p2/status",
        ],
        "no GET: the pods and NADs came from the watch",
      );
      // Rotation: a new token, the old one refused from now on.
      await Deno.writeTextFile(`${kc}.new`, kubeconfig(api.url, "t2"));
      await Deno.rename(`${kc}.new`, kc);
      auth.token = "t2";
      const rotated = api.requests.length;
      await add(3);
      const after = api.requests.slice(rotated);
      assert(after.every((r) => r.authorization === "Bearer t2"), "only the new token is used");
      assert(after.some((r) => r.method === "PATCH"), "network-status written with it");
      for (let i = 0; i < 4; i++) {
        const r = await node.pod("DEL", { netns: pods[i].path, id: `ppt-api-${i}`, name: `p${i}` });
        assert.equal(r.code, 0, `DEL ${i}: ${r.stdout}`);
      }
      assert.equal(d.served("ADD") + d.served("DEL"), 8, d.log());
      assert.match(
        api.pods.get("default/p3")!.annotations["k8s.v1.cni.cncf.io/network-status"],
        /net1/,
      );
    } finally {
      for (const ns of pods) await ns[Symbol.asyncDispose]();
    }
  },
});
