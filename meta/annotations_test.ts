import assert from "node:assert/strict";
import { CniError, Code } from "../conf/errors.ts";
import {
  DEFAULT_NETWORK_ANNOTATION,
  GENIE_ANNOTATION,
  NETWORKS_ANNOTATION,
  parseNetworkRef,
  parseNetworksAnnotation,
  planPodNetworks,
} from "./annotations.ts";

/** Runs `fn`, which must throw, and returns what it threw. */
function catchError(fn: () => unknown): CniError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return err;
    throw err;
  }
  throw new Error("Expected an error, none was thrown");
}

// Every annotation value in Multus's docs/quickstart.md and docs/how-to-use.md, quoted as
// written there (the pod is in namespace "default").
const MULTUS_DOC_EXAMPLES: Array<[string, string, unknown[]]> = [
  ["quickstart: one network", "macvlan-conf", [{ namespace: "default", name: "macvlan-conf" }]],
  ["quickstart: the same network twice", "macvlan-conf,macvlan-conf", [
    { namespace: "default", name: "macvlan-conf" },
    { namespace: "default", name: "macvlan-conf" },
  ]],
  ["quickstart: two networks", "foo,macvlan-conf", [
    { namespace: "default", name: "foo" },
    { namespace: "default", name: "macvlan-conf" },
  ]],
  ["how-to-use pod-case-01: a space after the comma", "macvlan-conf-1, macvlan-conf-2", [
    { namespace: "default", name: "macvlan-conf-1" },
    { namespace: "default", name: "macvlan-conf-2" },
  ]],
  ["how-to-use pod-case-02: another namespace", "testns1/macvlan-conf-3", [
    { namespace: "testns1", name: "macvlan-conf-3" },
  ]],
  ["how-to-use pod-case-03: an interface name", "macvlan-conf-1@macvlan1", [
    { namespace: "default", name: "macvlan-conf-1", interface: "macvlan1" },
  ]],
  [
    "how-to-use pod-case-04: JSON names",
    `[
            { "name" : "macvlan-conf-1" },
            { "name" : "macvlan-conf-2" }
    ]`,
    [{ namespace: "default", name: "macvlan-conf-1" }, {
      namespace: "default",
      name: "macvlan-conf-2",
    }],
  ],
  [
    "how-to-use pod-case-05: JSON namespace",
    `[
            { "name" : "macvlan-conf-1",
              "namespace": "testns1" }
    ]`,
    [{ namespace: "testns1", name: "macvlan-conf-1" }],
  ],
  [
    "how-to-use pod-case-06: JSON interface",
    `[
            { "name" : "macvlan-conf-1",
              "interface": "macvlan1" },
            { "name" : "macvlan-conf-2" }
    ]`,
    [
      { namespace: "default", name: "macvlan-conf-1", interface: "macvlan1" },
      { namespace: "default", name: "macvlan-conf-2" },
    ],
  ],
  [
    "how-to-use: default-route",
    `[{
      "name": "macvlan-conf",
      "default-route": ["192.168.2.1"]
    }]`,
    [{ namespace: "default", name: "macvlan-conf", defaultRoute: ["192.168.2.1"] }],
  ],
  ["how-to-use: sriov", "sriov-net", [{ namespace: "default", name: "sriov-net" }]],
];

for (const [what, value, want] of MULTUS_DOC_EXAMPLES) {
  Deno.test(`parseNetworksAnnotation() reads Multus's example "${what}"`, () => {
    assert.deepEqual(parseNetworksAnnotation(value, "default"), want);
  });
}

Deno.test("parseNetworksAnnotation() reads every JSON key, the old interfaceRequest included", () => {
  const value = JSON.stringify([
    {
      name: "a",
      namespace: "ns1",
      ips: ["10.1.1.5/24", "fd00::5"],
      mac: "02:00:00:00:00:01",
      "default-route": ["10.1.1.1"],
      portMappings: [{ hostPort: 80, containerPort: 8080 }],
      bandwidth: { ingressRate: 1000 },
      "cni-args": { foo: "bar" },
      "infiniband-guid": "c2:11:22:33:44:55:66:77",
      deviceID: "0000:03:00.1",
    },
    { name: "b", interfaceRequest: "old0" },
    { name: "c", interface: "new0", interfaceRequest: "old0" },
  ]);
  assert.deepEqual(parseNetworksAnnotation(value, "pods"), [
    {
      name: "a",
      namespace: "ns1",
      ips: ["10.1.1.5/24", "fd00::5"],
      mac: "02:00:00:00:00:01",
      defaultRoute: ["10.1.1.1"],
      portMappings: [{ hostPort: 80, containerPort: 8080 }],
      bandwidth: { ingressRate: 1000 },
      cniArgs: { foo: "bar" },
      infinibandGuid: "c2:11:22:33:44:55:66:77",
      deviceId: "0000:03:00.1",
    },
    { name: "b", namespace: "pods", interface: "old0" },
    {
      name: "c",
      namespace: "pods",
      interface: "new0",
    },
  ]);
});

Deno.test("parseNetworksAnnotation() reads namespace, name and ifname together", () => {
  assert.deepEqual(parseNetworksAnnotation(" ns1/a@net3 ,b ", "pods"), [
    { namespace: "ns1", name: "a", interface: "net3" },
    { namespace: "pods", name: "b" },
  ]);
});

Deno.test("parseNetworksAnnotation() treats an empty value as no networks", () => {
  assert.deepEqual(parseNetworksAnnotation("", "pods"), []);
  assert.deepEqual(parseNetworksAnnotation("  ", "pods"), []);
  assert.deepEqual(parseNetworksAnnotation("[]", "pods"), []);
});

const MALFORMED: Array<[string, string]> = [
  ["Upper case name", "Macvlan"],
  ["name ending in a dash", "macvlan-"],
  ["two slashes", "a/b/c"],
  ["two @", "a@b@c"],
  ["empty item", "a,,b"],
  ["trailing comma", "a,"],
  ["underscore in namespace", "my_ns/a"],
  ["ifname too long", "a@abcdefghijklmnop"],
  ["ifname with a colon", "a@eth0:1"],
  ["ifname dot-dot", "a@.."],
  ["dot in name", "a.b"],
  ["JSON that does not parse", `[{"name": "a"`],
  ["JSON object instead of a list", `{"name": "a"}`],
  ["JSON list element not an object", `["a"]`],
  ["JSON without name", `[{"namespace": "a"}]`],
  ["JSON name wrong type", `[{"name": 5}]`],
  ["JSON bad name", `[{"name": "A_B"}]`],
  ["JSON bad namespace", `[{"name": "a", "namespace": "NS"}]`],
  ["JSON bad interface", `[{"name": "a", "interface": "has space"}]`],
  ["JSON bad mac", `[{"name": "a", "mac": "02:00:00:00:00"}]`],
  ["JSON bad infiniband-guid", `[{"name": "a", "infiniband-guid": "zz"}]`],
  ["JSON bad ip", `[{"name": "a", "ips": ["10.1.1.300"]}]`],
  ["JSON bad cidr", `[{"name": "a", "ips": ["10.1.1.3/33"]}]`],
  ["JSON ips not a list", `[{"name": "a", "ips": "10.1.1.3"}]`],
  ["JSON bad default-route", `[{"name": "a", "default-route": ["gw"]}]`],
  ["JSON bandwidth not an object", `[{"name": "a", "bandwidth": 5}]`],
  ["JSON portMappings not a list", `[{"name": "a", "portMappings": {}}]`],
  ["JSON cni-args not an object", `[{"name": "a", "cni-args": "x=y"}]`],
  ["a quote in the short form", `a"b`],
];

for (const [what, value] of MALFORMED) {
  Deno.test(`parseNetworksAnnotation() rejects ${what} with code 7 quoting the key`, () => {
    const err = catchError(() => parseNetworksAnnotation(value, "pods"));
    assert.deepEqual(err instanceof CniError, true);
    assert.deepEqual(err.code, Code.InvalidConfig);
    assert.deepEqual(err.message.includes(`"${NETWORKS_ANNOTATION}"`), true, err.message);
  });
}

Deno.test("parseNetworksAnnotation() errors quote the bad token", () => {
  const err = catchError(() => parseNetworksAnnotation("good, Bad", "pods"));
  assert.deepEqual(err.message.includes(`"Bad"`), true, err.message);
});

Deno.test("parseNetworkRef() puts a bare name in the default namespace", () => {
  assert.deepEqual(parseNetworkRef("flannel", "kube-system", "clusterNetwork"), {
    namespace: "kube-system",
    name: "flannel",
  });
  assert.deepEqual(parseNetworkRef("other/flannel", "kube-system", "clusterNetwork"), {
    namespace: "other",
    name: "flannel",
  });
  const err = catchError(() => parseNetworkRef("x/Y", "kube-system", "clusterNetwork"));
  assert.deepEqual(err.code, Code.InvalidConfig);
  assert.deepEqual(err.message.includes(`"clusterNetwork"`), true);
});

const OPTS = { defaultNetworkNamespace: "kube-system" };

Deno.test("planPodNetworks() returns no override and no networks without annotations", () => {
  assert.deepEqual(planPodNetworks({ other: "x" }, "pods", OPTS), { secondary: [], warnings: [] });
});

Deno.test("planPodNetworks() looks the default network up in defaultNetworkNamespace", () => {
  const plan = planPodNetworks(
    {
      [DEFAULT_NETWORK_ANNOTATION]: "calico-conf",
      [NETWORKS_ANNOTATION]: "a@net5,b",
    },
    "pods",
    OPTS,
  );
  assert.deepEqual(plan.clusterOverride, { namespace: "kube-system", name: "calico-conf" });
  assert.deepEqual(plan.secondary, [
    { namespace: "pods", name: "a", interface: "net5" },
    { namespace: "pods", name: "b" },
  ]);
  assert.deepEqual(plan.genie, undefined);
});

Deno.test("planPodNetworks() rejects two default networks with code 7", () => {
  const err = catchError(() =>
    planPodNetworks({ [DEFAULT_NETWORK_ANNOTATION]: "a,b" }, "pods", OPTS)
  );
  assert.deepEqual(err.code, Code.InvalidConfig);
  assert.deepEqual(err.message.includes(DEFAULT_NETWORK_ANNOTATION), true);
});

Deno.test("planPodNetworks() gives Genie's networks eth0, eth1... in order", () => {
  const plan = planPodNetworks({ [GENIE_ANNOTATION]: "weave, other/flannel ,c" }, "pods", OPTS);
  assert.deepEqual(plan.clusterOverride, { namespace: "pods", name: "weave" });
  assert.deepEqual(plan.secondary, [
    { namespace: "other", name: "flannel", interface: "eth1" },
    { namespace: "pods", name: "c", interface: "eth2" },
  ]);
  assert.deepEqual(plan.genie?.length, 3);
  assert.deepEqual(plan.warnings, []);
});

Deno.test("planPodNetworks() prefers Multus's annotation over Genie's and warns", () => {
  const plan = planPodNetworks(
    { [GENIE_ANNOTATION]: "weave", [NETWORKS_ANNOTATION]: "a" },
    "pods",
    OPTS,
  );
  assert.deepEqual(plan.clusterOverride, undefined);
  assert.deepEqual(plan.genie, undefined);
  assert.deepEqual(plan.secondary, [{ namespace: "pods", name: "a" }]);
  assert.deepEqual(plan.warnings.length, 1);
  assert.deepEqual(plan.warnings[0].includes(GENIE_ANNOTATION), true);
});

Deno.test("planPodNetworks() rejects a malformed Genie annotation with code 7", () => {
  for (const v of ["a@eth3", "a,,b", "A", "a@x,b@x", "a@x/y"]) {
    const err = catchError(() => planPodNetworks({ [GENIE_ANNOTATION]: v }, "pods", OPTS));
    assert.deepEqual(err.code, Code.InvalidConfig, v);
    assert.deepEqual(err.message.includes(`"${GENIE_ANNOTATION}"`), true, err.message);
  }
});

Deno.test("planPodNetworks() warns about unknown JSON keys instead of failing", () => {
  const plan = planPodNetworks(
    { [NETWORKS_ANNOTATION]: `[{"name":"a","colour":"red"}]` },
    "p",
    OPTS,
  );
  assert.deepEqual(plan.secondary, [{ namespace: "p", name: "a" }]);
  assert.deepEqual(plan.warnings.some((w) => w.includes(`"colour"`)), true);
});
