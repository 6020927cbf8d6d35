import assert from "node:assert/strict";
import { haveEtcd, startEtcd } from "../../../tests/etcd_server.ts";
import { tempDir } from "../../../tests/testutils.ts";
import { EtcdClient } from "../../../clients/etcd/client.ts";
import { ctxFor } from "../host_local/_testutil.ts";
import { clusterAdd, clusterDel, whereabouts } from "./cluster.ts";
import { readSpaces, reconcile } from "./reconcile.ts";

const ignore = !haveEtcd();

function conf(endpoint: string, dir: string, node: string, range = "10.203.20.0/24") {
  return {
    cniVersion: "1.0.0",
    name: "ppe-rec",
    ipam: { type: "whereabouts", range, etcd_host: endpoint, dataDir: dir, node_name: node },
  };
}

async function add(raw: ReturnType<typeof conf>, id: string) {
  const r = await clusterAdd(whereabouts.parseConf(raw), ctxFor(raw, id));
  return r.ips![0].address;
}

Deno.test({
  name: "reconcile releases this node's records whose attachment is gone, never young or others'",
  ignore,
  async fn() {
    await using etcd = await startEtcd();
    await using dir = await tempDir("ppe-rc");
    const etcdc = new EtcdClient({ endpoints: etcd.endpoints });
    try {
      const a = conf(etcd.endpoints[0], dir.path, "na");
      const b = conf(etcd.endpoints[0], dir.path, "nb");
      for (const id of ["a1", "a2", "a3"]) await add(a, id);
      await add(b, "b1");
      const alive = (r: { containerId: string }) =>
        r.containerId === "a1" ? true : r.containerId === "a3" ? undefined : false;
      // Everything is younger than the default minimum age: nothing goes.
      const young = await reconcile({ etcd: etcdc, node: "na", alive });
      assert.deepEqual(young.released, []);
      const r = await reconcile({ etcd: etcdc, node: "na", alive, minAgeMs: 0 });
      assert.deepEqual(
        r.released.map((x) => x.containerId),
        ["a2"],
        "a1 alive, a3 unknown, b1 not ours",
      );
      const all = await reconcile({ etcd: etcdc, node: "na", alive, minAgeMs: 0, scope: "all" });
      assert.deepEqual(all.released.map((x) => x.containerId), ["b1"]);
      const left = (await readSpaces(etcdc, "/podplex/ipam/v1"))[0].records.map((x) =>
        x.containerId
      );
      assert.deepEqual(left.sort(), ["a1", "a3"]);
    } finally {
      etcdc.close();
    }
  },
});

Deno.test({
  name: "reconcile releases a block empty past its grace period, and restarts the grace when used",
  ignore,
  async fn() {
    await using etcd = await startEtcd();
    await using dir = await tempDir("ppe-rb");
    const etcdc = new EtcdClient({ endpoints: etcd.endpoints });
    try {
      const a = conf(etcd.endpoints[0], dir.path, "na");
      const parsed = whereabouts.parseConf(a);
      assert.equal(await add(a, "x1"), "10.203.20.1/24");
      const alive = () => true;
      let now = Date.now();
      const pass = () =>
        reconcile({ etcd: etcdc, node: "na", alive, graceMs: 1000, now: () => now });
      assert.deepEqual((await pass()).blocksMarked, [], "a block in use is not marked");
      await clusterDel(parsed, ctxFor(a, "x1"));
      assert.equal((await pass()).blocksMarked.length, 1, "empty: its grace starts");
      // Used again within the grace: unmarked, and it survives a pass past the old deadline.
      assert.equal(await add(a, "x2"), "10.203.20.1/24");
      now += 2000;
      assert.deepEqual((await pass()).blocksReleased, []);
      await clusterDel(parsed, ctxFor(a, "x2"));
      assert.equal((await pass()).blocksMarked.length, 1);
      now += 500;
      assert.deepEqual((await pass()).blocksReleased, [], "still within the grace");
      now += 600;
      assert.equal((await pass()).blocksReleased.length, 1);
      assert.deepEqual((await readSpaces(etcdc, "/podplex/ipam/v1"))[0]?.blocks ?? [], []);
      assert.deepEqual((await etcdc.range("/podplex/ipam/v1/s/n=/aff/", { prefix: true })).kvs, []);
    } finally {
      etcdc.close();
    }
  },
});

Deno.test({
  name: "podplex ipam reconcile with a kubeconfig: others' records of gone pods go, ours by state",
  ignore,
  async fn() {
    const { startFakeKubeApi } = await import("../../../tests/k8s_fake_server.ts");
    await using etcd = await startEtcd();
    await using dir = await tempDir("ppe-ra");
    await using api = await startFakeKubeApi();
    api.addPod("default", "alive");
    const kubeconfig = `${dir.path}/kubeconfig`;
    await Deno.writeTextFile(
      kubeconfig,
      [
        "apiVersion: v1",
        "kind: Config",
        "current-context: pp",
        "contexts: [{name: pp, context: {cluster: pp, user: pp}}]",
        `clusters: [{name: pp, cluster: {server: "${api.url}"}}]`,
        "users: [{name: pp, user: {token: x}}]",
      ].join("\n"),
    );
    const other = conf(etcd.endpoints[0], dir.path, "other");
    const pod = (name: string) => ({ K8S_POD_NAMESPACE: "default", K8S_POD_NAME: name });
    const add2 = (raw: ReturnType<typeof conf>, id: string, name: string) =>
      clusterAdd(whereabouts.parseConf(raw), ctxFor(raw, id, "eth0", pod(name)));
    await add2(other, "o1", "alive");
    await add2(other, "o2", "gone");
    // Ours: the pod exists in the API, but its sandbox is not in our (empty) state dir.
    const me = conf(etcd.endpoints[0], dir.path, "me");
    await add2(me, "m1", "alive");
    const net = `${dir.path}/net.json`;
    await Deno.writeTextFile(net, JSON.stringify(me));
    const bin = new URL("../../../bin/podplex", import.meta.url).pathname;
    const out = await new Deno.Command(bin, {
      args: [
        "ipam",
        "reconcile",
        "--network",
        net,
        "--kubeconfig",
        kubeconfig,
        "--state-dir",
        `${dir.path}/state`,
        "--min-age-ms",
        "0",
        "--json",
      ],
      env: { PODPLEX_SOCKET: "/nonexistent/podplex.sock" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const report = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.deepEqual(report.released.map((r: { containerId: string }) => r.containerId).sort(), [
      "m1",
      "o2",
    ]);
  },
});
