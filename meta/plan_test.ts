import assert from "node:assert/strict";
import { CniError } from "../conf/errors.ts";
import { parsePodplexConf } from "./conf.ts";
import type { NetworkResolver } from "./networks.ts";
import { capabilityArgsFor, cniArgsFor, planAttachments, type PlannedAttachment } from "./plan.ts";

/** A resolver that knows every network and records what it was asked. */
function resolver(asked: string[] = []): NetworkResolver {
  return {
    resolve(ref) {
      asked.push(`${ref.namespace}/${ref.name}`);
      return Promise.resolve({
        ref,
        source: "file",
        statusName: `${ref.namespace}/${ref.name}`,
        confText: JSON.stringify({ cniVersion: "1.0.0", name: ref.name, type: "bridge" }),
      });
    },
  };
}

function conf(extra: Record<string, unknown> = {}) {
  return parsePodplexConf({
    cniVersion: "1.1.0",
    name: "podplex",
    type: "podplex",
    clusterNetwork: "cluster",
    defaultNetworks: ["kube-system/storage"],
    ...extra,
  });
}

function names(atts: PlannedAttachment[]): string[] {
  return atts.map((a) => `${a.network.statusName}@${a.ifname}`);
}

Deno.test("planAttachments puts the cluster network on CNI_IFNAME, then defaultNetworks, then the pod's", async () => {
  const plan = await planAttachments({
    conf: conf(),
    annotations: { "k8s.v1.cni.cncf.io/networks": "a, other/b@data0, c" },
    podNamespace: "web",
    namespaceGiven: true,
    ifname: "eth0",
    resolver: resolver(),
  });
  assert.deepEqual(names(plan.attachments), [
    "kube-system/cluster@eth0",
    "kube-system/storage@net1",
    "web/a@net2",
    "other/b@data0",
    "web/c@net4",
  ]);
  assert.deepEqual(plan.attachments.map((a) => a.isDefault), [true, false, false, false, false]);
});

Deno.test("planAttachments skips defaultNetworks for a pod in a system namespace, with a warning", async () => {
  const plan = await planAttachments({
    conf: conf(),
    annotations: {},
    podNamespace: "kube-system",
    namespaceGiven: true,
    ifname: "eth0",
    resolver: resolver(),
  });
  assert.deepEqual(names(plan.attachments), ["kube-system/cluster@eth0"]);
  assert.match(plan.warnings.join("\n"), /defaultNetworks skipped/);
});

Deno.test("planAttachments gives defaultNetworks to a pod whose runtime names no namespace (podman)", async () => {
  const plan = await planAttachments({
    conf: conf(),
    annotations: {},
    podNamespace: "kube-system",
    namespaceGiven: false,
    ifname: "eth0",
    resolver: resolver(),
  });
  assert.deepEqual(names(plan.attachments), [
    "kube-system/cluster@eth0",
    "kube-system/storage@net1",
  ]);
});

Deno.test("planAttachments moves the default route to the network that asks for it", async () => {
  const plan = await planAttachments({
    conf: conf({ defaultNetworks: [] }),
    annotations: {
      "k8s.v1.cni.cncf.io/networks": '[{"name":"a","default-route":["10.1.0.1"]}]',
    },
    podNamespace: "web",
    namespaceGiven: true,
    ifname: "eth0",
    resolver: resolver(),
  });
  assert.deepEqual(plan.attachments.map((a) => a.isDefault), [false, true]);
});

Deno.test("planAttachments refuses an interface name requested twice", async () => {
  await assert.rejects(
    planAttachments({
      conf: conf({ defaultNetworks: [] }),
      annotations: { "k8s.v1.cni.cncf.io/networks": "a@data0, b@data0" },
      podNamespace: "web",
      namespaceGiven: true,
      ifname: "eth0",
      resolver: resolver(),
    }),
    (e: unknown) =>
      e instanceof CniError && e.code === 7 && /"data0" requested twice/.test(e.message),
  );
});

Deno.test("planAttachments with nothing to attach is a config error", async () => {
  await assert.rejects(
    planAttachments({
      conf: conf({ clusterNetwork: undefined, defaultNetworks: [] }),
      annotations: {},
      podNamespace: "web",
      namespaceGiven: true,
      ifname: "eth0",
      resolver: resolver(),
    }),
    (e: unknown) => e instanceof CniError && e.code === 7,
  );
});

Deno.test("cniArgsFor keeps IP and MAC for the cluster network only", async () => {
  const plan = await planAttachments({
    conf: conf(),
    annotations: {},
    podNamespace: "web",
    namespaceGiven: true,
    ifname: "eth0",
    resolver: resolver(),
  });
  const args = "IgnoreUnknown=1;IP=10.0.0.9;MAC=02:00:00:00:00:01;K8S_POD_NAME=p";
  assert.equal(cniArgsFor(plan.attachments[0], args), args);
  assert.equal(cniArgsFor(plan.attachments[1], args), "IgnoreUnknown=1;K8S_POD_NAME=p");
  assert.equal(cniArgsFor(plan.attachments[1], undefined), undefined);
});

Deno.test("capabilityArgsFor gives the runtime's args to the cluster network and the pod's to its own", async () => {
  const plan = await planAttachments({
    conf: conf({ defaultNetworks: [] }),
    annotations: {
      "k8s.v1.cni.cncf.io/networks":
        '[{"name":"a","ips":["10.1.0.5/24"],"mac":"02:00:00:00:00:07"}]',
    },
    podNamespace: "web",
    namespaceGiven: true,
    ifname: "eth0",
    resolver: resolver(),
  });
  const runtime = { portMappings: [{ hostPort: 80, containerPort: 8080 }] };
  assert.deepEqual(capabilityArgsFor(plan.attachments[0], runtime), runtime);
  assert.deepEqual(capabilityArgsFor(plan.attachments[1], runtime), {
    ips: ["10.1.0.5/24"],
    mac: "02:00:00:00:00:07",
  });
});
