/**
 * The annotation syntax and typing as Multus's parser has them (pkg/k8sclient
 * parsePodNetworkObjectName, Go's typed decode into NetworkSelectionElement, net.ParseMAC,
 * net.ParseIP), CNI-Genie's `name@ifname`, and the bounds on what a pod may write.
 */
import assert from "node:assert/strict";
import { CniError, Code } from "../conf/errors.ts";
import { parseMac } from "../conf/mac.ts";
import {
  DEFAULT_NETWORK_ANNOTATION,
  GENIE_ANNOTATION,
  NETWORKS_ANNOTATION,
  parseNetworksAnnotation,
  planPodNetworks,
} from "./annotations.ts";
import { type MetaCall, runtimeAnnotations } from "./context.ts";

const OPTS = { defaultNetworkNamespace: "kube-system" };

function codeAndMessage(fn: () => unknown): { code: number; msg: string } {
  try {
    fn();
  } catch (err) {
    // Anything but a CniError (a TypeError, say) is the 999 this file exists to prevent.
    if (!(err instanceof CniError)) throw err;
    return { code: err.code, msg: err.message };
  }
  throw new Error("Expected an error, none was thrown");
}

function json(v: unknown): string {
  return JSON.stringify(v);
}

Deno.test("annotation values that are not strings are code 7 naming the annotation", () => {
  for (const key of [NETWORKS_ANNOTATION, DEFAULT_NETWORK_ANNOTATION, GENIE_ANNOTATION]) {
    for (const v of [5, true, null, {}, ["a"], { name: "a" }]) {
      const e = codeAndMessage(() => planPodNetworks({ [key]: v }, "pods", OPTS));
      assert.equal(e.code, Code.InvalidConfig, `${key}=${json(v)}`);
      assert.match(e.msg, new RegExp(`"${key.replaceAll(".", "\\.")}".*must be a string`));
    }
  }
});

Deno.test("pod annotations handed over as a string or a list are code 7 naming the capability", () => {
  for (const given of ['{"k8s.v1.cni.cncf.io/networks":"a"}', ["a"], 5, true]) {
    const call = { runtimeArgs: { "io.kubernetes.cri.pod-annotations": given } } as unknown;
    const e = codeAndMessage(() => runtimeAnnotations(call as MetaCall));
    assert.equal(e.code, Code.InvalidConfig, json(given));
    assert.match(e.msg, /"io\.kubernetes\.cri\.pod-annotations"/);
  }
  // containerd sends null for a pod without annotations: none given, not an error.
  const none = { runtimeArgs: { "io.kubernetes.cri.pod-annotations": null } } as unknown;
  assert.equal(runtimeAnnotations(none as MetaCall), undefined);
  const ok = { runtimeArgs: { "IO.Kubernetes.CRI.Pod-Annotations": { a: "b" } } } as unknown;
  assert.deepEqual(runtimeAnnotations(ok as MetaCall), { a: "b" });
});

Deno.test("an annotation too large, with too many networks or nested too deep is code 7", () => {
  const big = "a,".repeat(140 * 1024) + "a";
  const cases = [
    { v: big, re: /bytes; at most 262144/ },
    { v: Array.from({ length: 129 }, (_, i) => `n${i}`).join(","), re: /129 networks/ },
    { v: json(Array.from({ length: 129 }, (_, i) => ({ name: `n${i}` }))), re: /129 networks/ },
    { v: `[{"name":"a","cni-args":${"[".repeat(40)}${"]".repeat(40)}}]`, re: /nested 42 levels/ },
  ];
  for (const { v, re } of cases) {
    const e = codeAndMessage(() => planPodNetworks({ [NETWORKS_ANNOTATION]: v }, "p", OPTS));
    assert.equal(e.code, Code.InvalidConfig);
    assert.match(e.msg, re);
    assert.ok(e.msg.length < 400, "a pod's huge value is not copied into the message");
  }
  const genie = Array.from({ length: 129 }, (_, i) => `n${i}`).join(",");
  assert.equal(codeAndMessage(() => planPodNetworks({ cni: genie }, "p", OPTS)).code, 7);
});

Deno.test("parseMac() reads every form of Go's net.ParseMAC and normalises it", () => {
  const six = "00:00:5e:00:53:01";
  for (const s of ["00:00:5e:00:53:01", "00-00-5E-00-53-01", "0000.5e00.5301", "0000.5E00.5301"]) {
    assert.deepEqual(parseMac(s), { text: six, octets: 6 }, s);
  }
  assert.equal(parseMac("02:00:5e:10:00:00:00:01")?.octets, 8);
  assert.equal(parseMac("0200.5e10.0000.0001")?.octets, 8);
  const ib = "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01";
  assert.deepEqual(parseMac(ib), { text: ib, octets: 20 });
  assert.equal(parseMac(ib.replaceAll(":", "-"))?.text, ib);
  for (
    const bad of [
      "",
      "00:00:5e:00:53",
      "00:00:5e:00:53:01:02",
      "00:00-5e:00:53:01",
      "0000:5e00:5301",
      "00.00.5e.00.53.01",
      "000.05e00.5301",
      "00:00:5e:00:53:0g",
      " 00:00:5e:00:53:01",
      "00:00:5e:00:53:01 ",
      5,
    ]
  ) {
    assert.equal(parseMac(bad), undefined, json(bad));
  }
});

Deno.test("the JSON form takes each ParseMAC form, normalised, and an empty mac as absent", () => {
  const sels = parseNetworksAnnotation(
    json([
      { name: "a", mac: "02-00-00-AA-BB-01" },
      { name: "b", mac: "0200.00aa.bb02" },
      { name: "c", mac: "" },
      { name: "d", "infiniband-guid": "", interface: "", deviceID: "" },
    ]),
    "p",
  );
  assert.deepEqual(sels, [
    { name: "a", namespace: "p", mac: "02:00:00:aa:bb:01" },
    { name: "b", namespace: "p", mac: "02:00:00:aa:bb:02" },
    { name: "c", namespace: "p" },
    { name: "d", namespace: "p" },
  ]);
});

Deno.test("the short form takes Multus's edges: net@, ns/net@, a leading /", () => {
  assert.deepEqual(parseNetworksAnnotation("a@, ns1/b@ ,/c, /d@x1, ns2 / e", "p"), [
    { namespace: "p", name: "a" },
    { namespace: "ns1", name: "b" },
    { namespace: "p", name: "c" },
    { namespace: "p", name: "d", interface: "x1" },
    { namespace: "ns2", name: "e" },
  ]);
});

const TYPED: Array<[string, unknown, RegExp]> = [
  ["an IPv4 with leading zeros in ips", [{ name: "a", ips: ["010.1.1.5"] }], /"010\.1\.1\.5"/],
  ["a CIDR with leading zeros", [{ name: "a", ips: ["10.01.1.5/24"] }], /"10\.01\.1\.5\/24"/],
  ["a gateway with leading zeros", [{ name: "a", "default-route": ["10.1.1.01"] }], /10\.1\.1\.01/],
  ["a number in ips", [{ name: "a", ips: [5] }], /"ips\[0\]" must be a string/],
  [
    "a string hostPort",
    [{ name: "a", portMappings: [{ hostPort: "80" }] }],
    /hostPort" must be an integer, got "80"/,
  ],
  [
    "a null port mapping",
    [{ name: "a", portMappings: [null] }],
    /"portMappings\[0\]" must be an object/,
  ],
  [
    "a string bandwidth",
    [{ name: "a", bandwidth: { ingressRate: "1k" } }],
    /ingressRate" must be an integer/,
  ],
  [
    "a float bandwidth",
    [{ name: "a", bandwidth: { egressBurst: 1.5 } }],
    /egressBurst" must be an integer, got 1\.5/,
  ],
  ["a string protocol that is a number", [{
    name: "a",
    portMappings: [{ hostPort: 80, protocol: 6 }],
  }], /protocol" must be a string/],
  ["a number as interface", [{ name: "a", interface: 1 }], /"interface" must be a string/],
  ["a list as mac", [{ name: "a", mac: ["x"] }], /"mac" must be a string/],
  [
    "a string as default-route",
    [{ name: "a", "default-route": "10.1.1.1" }],
    /"default-route" must be a list/,
  ],
  ["a string as cni-args", [{ name: "a", "cni-args": "k=v" }], /"cni-args" must be an object/],
  ["a case-folded key of the wrong type", [{ NAME: 5 }], /"NAME" must be a string/],
];

for (const [what, value, re] of TYPED) {
  Deno.test(`the JSON form refuses ${what} with code 7 naming the field`, () => {
    const e = codeAndMessage(() => parseNetworksAnnotation(json(value), "p"));
    assert.equal(e.code, Code.InvalidConfig);
    assert.match(e.msg, new RegExp(`"${NETWORKS_ANNOTATION.replaceAll(".", "\\.")}"`));
    assert.match(e.msg, re);
  });
}

Deno.test("integer fields take integer literals only, as Go's decode into int", () => {
  for (const lit of ["80.0", "8e1", "8E1", "80.5", "1e400", "9007199254740993"]) {
    const e = codeAndMessage(() =>
      parseNetworksAnnotation(`[{"name":"a","portMappings":[{"hostPort":${lit}}]}]`, "p")
    );
    assert.equal(e.code, Code.InvalidConfig, lit);
    assert.match(e.msg, /hostPort/);
  }
  const ok = parseNetworksAnnotation(
    `[{"name":"a","portMappings":[{"hostPort":80,"containerPort":-0}],` +
      `"bandwidth":{"ingressRate":1000000,"egressBurst":0},"cni-args":{"f":1.5}}]`,
    "p",
  );
  assert.deepEqual(ok[0].portMappings, [{ hostPort: 80, containerPort: -0 }]);
  assert.deepEqual(ok[0].bandwidth, { ingressRate: 1000000, egressBurst: 0 });
  assert.deepEqual(ok[0].cniArgs, { f: 1.5 }, "cni-args is a free map: floats are fine there");
});

Deno.test("JSON keys match case-insensitively and null leaves a field unset, as in Go", () => {
  const sels = parseNetworksAnnotation(
    json([{ Name: "a", NameSpace: "ns1", INTERFACE: "x1", ips: null, mac: null }]),
    "p",
  );
  assert.deepEqual(sels, [{ name: "a", namespace: "ns1", interface: "x1" }]);
});

Deno.test("Genie's cni annotation takes name@ifname; the others get eth0, eth1... skipping them", () => {
  const plan = planPodNetworks(
    { [GENIE_ANNOTATION]: "a@data0, b, c@eth1, ns2/d, e@ eth3 " },
    "p",
    OPTS,
  );
  assert.deepEqual(plan.clusterOverride, { namespace: "p", name: "b" });
  assert.deepEqual(plan.secondary, [
    { namespace: "p", name: "a", interface: "data0" },
    { namespace: "p", name: "c", interface: "eth1" },
    { namespace: "ns2", name: "d", interface: "eth2" },
    { namespace: "p", name: "e", interface: "eth3" },
  ]);
  const asked = planPodNetworks({ [GENIE_ANNOTATION]: "a@net7, b@eth0" }, "p", OPTS);
  assert.deepEqual(asked.clusterOverride, { namespace: "p", name: "b" });
  assert.deepEqual(asked.secondary, [{ namespace: "p", name: "a", interface: "net7" }]);
  for (const [v, re] of [["a@x1, b@x1", /"x1" is requested twice/], ["a@x1", /eth0/]] as const) {
    const e = codeAndMessage(() => planPodNetworks({ [GENIE_ANNOTATION]: v }, "p", OPTS));
    assert.equal(e.code, Code.InvalidConfig, v);
    assert.match(e.msg, re);
  }
});
