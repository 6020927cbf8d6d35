/**
 * Hot-plug in thick mode as deployed: the daemon in a container of its own with the
 * DaemonSet's mounts (tests/_thick_rig.ts), `--dynamic-networks`, the pod ADDed through the
 * host's shim, then its annotation changed on the API server (tests/k8s_fake_server.ts: no
 * kube-apiserver is installable here). Needs `deno task build`.
 */
import assert from "node:assert/strict";
import { NETWORKS_ANNOTATION } from "../meta/annotations.ts";
import { isRoot, tryRun } from "./testutils.ts";
import { thickNode } from "./_thick_rig.ts";
import { startFakeKubeApi } from "./k8s_fake_server.ts";
import { addrsOf, leases, podLinks, ppdName, ppdNetns } from "./_hotplug_rig.ts";
import { eventsOf, statusInterfaces, waitFor } from "./_hotplug_daemon.ts";

Deno.test({
  name: "thick: the daemon in its container hot-plugs a network into a pod the shim ADDed",
  ignore: !isRoot,
  async fn() {
    await using api = await startFakeKubeApi();
    const bridges = [ppdName("b"), ppdName("b")];
    await using node = await thickNode({
      networks: 2,
      subnet: "10.163",
      offset: 120,
      bridges,
      conf: { kubeconfig: "@KC@", defaultNetworks: [] },
    });
    try {
      const kc = `${node.confDir}/podplex.d/podplex.kubeconfig`;
      await Deno.mkdir(`${node.confDir}/podplex.d`, { recursive: true });
      await Deno.writeTextFile(
        kc,
        `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${api.url}"}}]\n` +
          `users: [{name: u, user: {token: t}}]\n` +
          `contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`,
      );
      node.conflist = node.conflist.replace("@KC@", kc);
      await Deno.writeTextFile(`${node.confDir}/00-podplex.conflist`, node.conflist);
      await using d = await node.startDaemon([
        "--node-name",
        "node-1",
        "--dynamic-networks",
        "--state-dir",
        node.stateDir,
      ]);
      await using ns = await ppdNetns();
      api.addPod("default", "ppdthick", {}, "node-1");
      const add = await node.pod("ADD", { netns: ns.path, id: "ppdthickc", name: "ppdthick" });
      assert.equal(add.code, 0, add.stdout + add.stderr);
      assert.equal(d.served("ADD"), 1, d.log());
      const set = (v: string) =>
        api.setPodAnnotations("default", "ppdthick", {
          ...api.pods.get("default/ppdthick")!.annotations,
          [NETWORKS_ANNOTATION]: v,
        });
      set("net-b@data1");
      await waitFor("data1", () => statusInterfaces(api, "ppdthick").includes("data1"));
      assert.deepEqual(await addrsOf(ns.name, "data1"), ["10.163.121.2/24"]);
      assert.deepEqual(eventsOf(api, "ppdthick"), [
        "AddedInterface Add data1 [10.163.121.2/24] from default/net-b",
      ]);
      set("");
      await waitFor("data1 gone", () => !statusInterfaces(api, "ppdthick").includes("data1"));
      assert.deepEqual(await podLinks(ns.name), ["eth0"]);
      const del = await node.pod("DEL", { netns: ns.path, id: "ppdthickc", name: "ppdthick" });
      assert.equal(del.code, 0, del.stdout + del.stderr);
      assert.deepEqual(leases(node.dataDir), []);
    } finally {
      for (const br of bridges) await tryRun("ip", "link", "del", br);
    }
  },
});
