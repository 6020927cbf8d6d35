/**
 * SR-IOV / device plugins through the real launcher: two NADs annotated with
 * `k8s.v1.cni.cncf.io/resourceName` give their attachments the pod's devices from kubelet's
 * checkpoint (meta/testdata's fixture, at kubelet's own path inside a private mount namespace:
 * tmpfs over /var/lib). No SR-IOV hardware is here, so the delegate is a recording plugin that
 * keeps the conf it was called with; DEL must get the same device from podplex's state.
 */
import { deepStrictEqual as assertEquals, match, ok } from "node:assert/strict";
import { KUBELET_CHECKPOINT } from "../meta/device_id.ts";
import { createKubeClient } from "../clients/k8s/client.ts";
import { createResolver } from "../meta/networks.ts";
import { startFakeKubeApi } from "./k8s_fake_server.ts";
import { isRoot, stateFiles, tempDir, tempNetns } from "./testutils.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const FIXTURE = `${ROOT}/meta/testdata/kubelet_internal_checkpoint.json`;
const POD = "6f1f7a2e-3c41-4b8e-9d2a-0c5e7b9a1d11";
const RESOURCE = "intel.com/intel_sriov_netdevice";

/** A CNI plugin that appends `<verb> <conf>` to $dir/calls and answers an empty result. */
const RECORDER = (dir: string) =>
  `#!/bin/sh
conf=$(cat)
printf '%s %s\\n' "$CNI_COMMAND" "$conf" >> '${dir}/calls'
[ "$CNI_COMMAND" = ADD ] && printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s","sandbox":"%s"}],"ips":[]}' "$CNI_IFNAME" "$CNI_NETNS"
exit 0
`;

const nad = (name: string, resource: string) =>
  [
    "apiVersion: k8s.cni.cncf.io/v1",
    "kind: NetworkAttachmentDefinition",
    "metadata:",
    `  name: ${name}`,
    "  namespace: default",
    `  annotations: {k8s.v1.cni.cncf.io/resourceName: ${resource}}`,
    "spec:",
    `  config: '{"cniVersion": "1.0.0", "type": "ppnrecord", "vlan": 0}'`,
  ].join("\n") + "\n";

async function cni(dir: string, netns: string, command: string, podUid: string) {
  const conf = JSON.stringify({
    cniVersion: "1.0.0",
    name: "podplex",
    type: "podplex",
    clusterNetwork: { cniVersion: "1.0.0", name: "lo", type: "loopback" },
    networksDir: `${dir}/nets`,
    stateDir: `${dir}/state`,
    runtimeConfig: {
      "io.kubernetes.cri.pod-annotations": { "k8s.v1.cni.cncf.io/networks": "vf-a, vf-b" },
    },
  });
  const checkpointDir = KUBELET_CHECKPOINT.slice(0, KUBELET_CHECKPOINT.lastIndexOf("/"));
  const script = [
    "set -e",
    "mount -t tmpfs tmpfs /var/lib",
    `mkdir -p ${checkpointDir}`,
    `cp ${FIXTURE} ${KUBELET_CHECKPOINT}`,
    `exec ${ROOT}/bin/podplex`,
  ].join("\n");
  const child = new Deno.Command("unshare", {
    args: ["-m", "--propagation", "private", "sh", "-c", script],
    env: {
      CNI_COMMAND: command,
      CNI_CONTAINERID: "ppndev1",
      CNI_NETNS: netns,
      CNI_IFNAME: "eth0",
      CNI_PATH: `${dir}/bin`,
      CNI_ARGS:
        `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=sriov;K8S_POD_UID=${podUid}`,
      PODPLEX_SOCKET: "/nonexistent",
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(conf));
  await w.close();
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** The confs the recording plugin was called with, by verb. */
async function calls(dir: string): Promise<[string, Record<string, unknown>][]> {
  const text = await Deno.readTextFile(`${dir}/calls`).catch(() => "");
  return text.split("\n").filter(Boolean).map((l) => {
    const i = l.indexOf(" ");
    return [l.slice(0, i), JSON.parse(l.slice(i + 1))];
  });
}

Deno.test({
  name:
    "NADs with a resourceName get the pod's devices from kubelet's checkpoint, in order, also in DEL",
  ignore: !isRoot,
  async fn() {
    await using tmp = await tempDir("ppn-dev");
    await using ns = await tempNetns("ppn");
    const dir = tmp.path;
    await Deno.mkdir(`${dir}/nets/default`, { recursive: true });
    await Deno.mkdir(`${dir}/bin`);
    await Deno.writeTextFile(`${dir}/bin/ppnrecord`, RECORDER(dir), { mode: 0o755 });
    await Deno.writeTextFile(`${dir}/nets/default/vf-a.yaml`, nad("vf-a", RESOURCE));
    await Deno.writeTextFile(`${dir}/nets/default/vf-b.yaml`, nad("vf-b", RESOURCE));

    const add = await cni(dir, ns.path, "ADD", POD);
    assertEquals(add.code, 0, add.stdout + add.stderr);
    const adds = (await calls(dir)).filter(([v]) => v === "ADD").map(([, c]) => c);
    assertEquals(adds.map((c) => [c.deviceID, c.pciBusID, c.vlan]), [
      ["0000:03:02.1", "0000:03:02.1", 0],
      ["0000:86:02.3", "0000:86:02.3", 0],
    ]);

    const del = await cni(dir, ns.path, "DEL", POD);
    assertEquals(del.code, 0, del.stdout + del.stderr);
    const dels = (await calls(dir)).filter(([v]) => v === "DEL").map(([, c]) => c.deviceID);
    assertEquals(dels.sort(), ["0000:03:02.1", "0000:86:02.3"]);
    assertEquals(stateFiles(`${dir}/state`).filter((f) => f.endsWith(".json")), []);
  },
});

Deno.test({
  name: "a pod kubelet allocated no device of the resource fails ADD with code 7, leaving nothing",
  ignore: !isRoot,
  async fn() {
    await using tmp = await tempDir("ppn-dev");
    await using ns = await tempNetns("ppn");
    const dir = tmp.path;
    await Deno.mkdir(`${dir}/nets/default`, { recursive: true });
    await Deno.mkdir(`${dir}/bin`);
    await Deno.writeTextFile(`${dir}/bin/ppnrecord`, RECORDER(dir), { mode: 0o755 });
    await Deno.writeTextFile(`${dir}/nets/default/vf-a.yaml`, nad("vf-a", "example.com/none"));
    await Deno.writeTextFile(`${dir}/nets/default/vf-b.yaml`, nad("vf-b", RESOURCE));

    const add = await cni(dir, ns.path, "ADD", POD);
    assertEquals(add.code, 1, add.stdout + add.stderr);
    const err = JSON.parse(add.stdout);
    assertEquals(err.code, 7);
    match(err.msg, /"default\/vf-a" needs a device of "example\.com\/none"/);
    ok(!(await calls(dir)).length, "no delegate ran");
    assertEquals(stateFiles(`${dir}/state`).filter((f) => f.endsWith(".json")), []);
  },
});

Deno.test("a NAD from the API carries its resourceName annotation to the resolved network", async () => {
  await using api = await startFakeKubeApi();
  await using tmp = await tempDir("ppn-dev");
  api.addNad("default", "vf-api", `{"cniVersion":"1.0.0","type":"sriov"}`);
  api.nads.get("default/vf-api")!.metadata = {
    name: "vf-api",
    namespace: "default",
    annotations: { "k8s.v1.cni.cncf.io/resourceName": RESOURCE },
  };
  const kubeconfig = `${tmp.path}/kubeconfig`;
  await Deno.writeTextFile(
    kubeconfig,
    `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${api.url}"}}]\n` +
      `users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n` +
      `current-context: x\n`,
  );
  using client = createKubeClient({ kubeconfig });
  const resolver = createResolver({
    networksDir: `${tmp.path}/nets`,
    confDir: tmp.path,
    api: client,
    namespaceIsolation: false,
    globalNamespaces: [],
    podNamespace: "default",
  });
  const net = await resolver.resolve({ namespace: "default", name: "vf-api" });
  assertEquals(net.resourceName, RESOURCE);
  assertEquals(net.source, "nad");
});
