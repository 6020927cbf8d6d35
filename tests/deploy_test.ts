/**
 * The manifest drift test: every file of deploy/ parses, and the DaemonSet, ConfigMap, RBAC
 * and CRD agree with the code (flags, paths, file names, env, the image's entry, the API
 * requests the real client makes). Each check is shown to fail on a manifest that disagrees.
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { createKubeClient } from "../clients/k8s/client.ts";
import { driftProblems, installContainer, loadManifests, type Obj } from "./_deploy.ts";
import { startFakeKubeApi } from "./k8s_fake_server.ts";
import { tempDir } from "./testutils.ts";
import { startNetworkPolicy } from "../controllers/policy/policy.ts";
import { testContext } from "../controllers/testing.ts";

/** The requests podplex's API client makes for a pod: what RBAC and the CRD must serve. */
async function clientRequests(): Promise<{ method: string; path: string }[]> {
  await using api = await startFakeKubeApi();
  await using tmp = await tempDir("ppn-drift");
  api.addPod("default", "web");
  api.addNad("default", "lan", `{"cniVersion":"1.0.0","type":"bridge"}`);
  api.nodes.set("node-1", ["10.244.1.0/24"]);
  const kubeconfig = `${tmp.path}/kubeconfig`;
  await Deno.writeTextFile(
    kubeconfig,
    `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${api.url}"}}]\n` +
      `users: [{name: u, user: {token: t}}]\n` +
      `contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`,
  );
  using client = createKubeClient({ kubeconfig });
  await client.getPod("default", "web");
  await client.getNad("default", "lan");
  await client.patchPodAnnotations("default", "web", { "k8s.v1.cni.cncf.io/network-status": "[]" });
  // The cluster network's node agent with kubeSubnetMgr.
  await client.getNodePodCidrs("node-1");
  // The hot-plug controller's Events (serve --dynamic-networks).
  await client.createEvent("default", { metadata: { generateName: "web." }, reason: "x" });
  return api.requests.map(({ method, path }) => ({ method, path }));
}

/**
 * The requests of the network policy controller (serve --network-policy) with the real API
 * client: its LISTs, then its WATCHes.
 */
async function policyRequests(): Promise<{ method: string; path: string; query: string }[]> {
  await using api = await startFakeKubeApi();
  await using tmp = await tempDir("ppf-drift");
  const kubeconfig = `${tmp.path}/kubeconfig`;
  await Deno.writeTextFile(
    kubeconfig,
    `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${api.url}"}}]\n` +
      `users: [{name: u, user: {token: t}}]\n` +
      `contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`,
  );
  using client = createKubeClient({ kubeconfig });
  const c = await startNetworkPolicy({
    ...testContext(),
    api: client,
    states: () => Promise.resolve([]),
    apply: () => Promise.resolve(),
  });
  const watches = () => api.requests.filter((r) => r.query.includes("watch=1")).length;
  for (let i = 0; (!c.synced || watches() < 4) && i < 200; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  await c.close();
  return api.requests.map(({ method, path, query }) => ({ method, path, query }));
}

const requests = await clientRequests();
const policy = await policyRequests();

Deno.test("deploy/ agrees with the code (flags, paths, ConfigMap, image, RBAC, CRD)", async () => {
  const m = await loadManifests();
  for (const kind of ["CustomResourceDefinition", "ServiceAccount", "ClusterRole", "DaemonSet"]) {
    ok([...m.keys()].some((k) => k.startsWith(`${kind}/`)), `deploy/ has a ${kind}`);
  }
  assertEquals(requests.map((r) => r.method), ["GET", "GET", "PATCH", "GET", "POST"]);
  assertEquals(
    policy.map((r) => r.path).filter((p, i, a) => a.indexOf(p) === i).sort(),
    [
      "/api/v1/namespaces",
      "/api/v1/pods",
      "/apis/k8s.cni.cncf.io/v1beta2/multi-networkpolicies",
      "/apis/networking.k8s.io/v1/networkpolicies",
    ],
  );
  assertEquals(await driftProblems(m, [...requests, ...policy]), []);
});

Deno.test("deploy/thin (the per-call install) agrees with the code with deploy/'s CRD, RBAC, ConfigMap", async () => {
  const m = await loadManifests();
  const thin = await loadManifests(`${new URL("../deploy/thin", import.meta.url).pathname}`);
  ok(thin.has("DaemonSet/podplex"), "deploy/thin has the DaemonSet");
  for (const [k, v] of thin) m.set(k, v);
  const pod = installContainer(m).pod;
  ok(!pod.containers.some((c: Obj) => c.name === "daemon"), "thin runs no daemon");
  assertEquals(await driftProblems(m, [...requests, ...policy]), []);
});

/** A deep copy of the manifests with `edit` applied. */
async function mutated(edit: (m: Map<string, Obj>) => void): Promise<Map<string, Obj>> {
  const m = structuredClone(await loadManifests());
  edit(m);
  return m;
}

Deno.test("the drift test fails on each kind of disagreement", async () => {
  const cases: [string, (m: Map<string, Obj>) => void, RegExp][] = [
    ["an unknown flag", (m) => {
      installContainer(m).container.args.push("--cni-conf-dir=/x");
    }, /"--cni-conf-dir", which podplex install does not know/],
    ["a flag without its value", (m) => {
      const c = installContainer(m).container;
      c.args = c.args.map((a: string) => a.startsWith("--conf-dir") ? "--conf-dir" : a);
    }, /--conf-dir/],
    ["a bin dir mounted elsewhere", (m) => {
      const c = installContainer(m);
      c.container.volumeMounts.find((v: Obj) => v.name === "cni-bin").mountPath = "/host/bin";
    }, /--bin-dir is "\/host\/opt\/cni\/bin", but hostPath "\/opt\/cni\/bin"/],
    ["a conf dir hostPath that is not the code's", (m) => {
      installContainer(m).volumes.get("cni-conf")!.hostPath.path = "/etc/cni/multus/net.d";
    }, /no hostPath "\/etc\/cni\/net\.d"/],
    ["a ConfigMap key typo", (m) => {
      const cm = m.get("ConfigMap/podplex-config")!;
      cm.data = { "podplex.jsn": cm.data["podplex.json"] };
    }, /has no key "podplex\.json"/],
    ["a ConfigMap field podplex refuses", (m) => {
      m.get("ConfigMap/podplex-config")!.data["podplex.json"] = `{"stateDri": "/x"}`;
    }, /stateDri/],
    ["an env var nothing reads", (m) => {
      installContainer(m).container.env = [{ name: "MULTUS_NODE_NAME", value: "x" }];
    }, /MULTUS_NODE_NAME/],
    ["a command that is not the image's entry", (m) => {
      installContainer(m).container.command = ["/usr/src/podplex/bin/podplex", "install"];
    }, /command .* is not the image's ENTRYPOINT/],
    ["RBAC without events create", (m) => {
      const role = m.get("ClusterRole/podplex")!;
      role.rules = role.rules.filter((r: Obj) => !r.resources.includes("events"));
    }, /does not allow POST events/],
    ["RBAC without pods/status patch", (m) => {
      const role = m.get("ClusterRole/podplex")!;
      role.rules = role.rules.filter((r: Obj) => !r.resources.includes("pods/status"));
    }, /does not allow PATCH pods\/status/],
    ["a CRD of another group", (m) => {
      const crd = m.get("CustomResourceDefinition/network-attachment-definitions.k8s.cni.cncf.io")!;
      m.delete("CustomResourceDefinition/network-attachment-definitions.k8s.cni.cncf.io");
      crd.spec.group = "k8s.cni.io";
      m.set("CustomResourceDefinition/network-attachment-definitions.k8s.cni.io", crd);
    }, /no CRD named network-attachment-definitions\.k8s\.cni\.cncf\.io/],
    ["RBAC without namespaces watch", (m) => {
      const role = m.get("ClusterRole/podplex")!;
      role.rules = role.rules.map((r: Obj) =>
        r.resources.includes("namespaces") ? { ...r, verbs: ["list"] } : r
      );
    }, /does not allow watch namespaces/],
    ["RBAC without multi-networkpolicies", (m) => {
      const role = m.get("ClusterRole/podplex")!;
      role.rules = role.rules.filter((r: Obj) => !r.resources.includes("multi-networkpolicies"));
    }, /does not allow list multi-networkpolicies/],
    ["a MultiNetworkPolicy CRD without v1beta2", (m) => {
      const crd = m.get("CustomResourceDefinition/multi-networkpolicies.k8s.cni.cncf.io")!;
      crd.spec.versions = crd.spec.versions.filter((v: Obj) => v.name !== "v1beta2");
    }, /the CRD does not serve v1beta2/],
    ["no /run/netns mount", (m) => {
      const c = installContainer(m);
      c.container.volumeMounts = c.container.volumeMounts.filter((v: Obj) => v.name !== "netns");
    }, /hostPath "\/run\/netns"/],
  ];
  for (const [what, edit, expected] of cases) {
    const problems = await driftProblems(await mutated(edit), [...requests, ...policy]);
    ok(problems.some((p) => expected.test(p)), `${what}: ${JSON.stringify(problems)}`);
  }
});
