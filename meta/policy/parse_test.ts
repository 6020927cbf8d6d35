import assert from "node:assert/strict";
import { parsePolicy } from "./parse.ts";

const NP = { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy" };
const meta = { name: "p", namespace: "x" };
const withSpec = (spec: unknown) => parsePolicy({ ...NP, metadata: meta, spec });

Deno.test("parsePolicy() defaults policyTypes to Ingress, plus Egress when egress rules exist", () => {
  const a = withSpec({ podSelector: {} }).policy!;
  assert.deepStrictEqual([a.ingressIsolated, a.egressIsolated], [true, false]);
  const b = withSpec({ podSelector: {}, egress: [{}] }).policy!;
  assert.deepStrictEqual([b.ingressIsolated, b.egressIsolated], [true, true]);
  const c = withSpec({ podSelector: {}, egress: [] }).policy!;
  assert.deepStrictEqual(
    [c.ingressIsolated, c.egressIsolated],
    [true, false],
    "an empty list is no rule",
  );
  const d = withSpec({ podSelector: {}, policyTypes: ["Egress"], ingress: [{}] }).policy!;
  assert.deepStrictEqual(
    [d.ingressIsolated, d.egressIsolated],
    [false, true],
    "explicit types win",
  );
});

Deno.test("parsePolicy() reads empty from/to/ports as everyone and every port", () => {
  const p = withSpec({ podSelector: {}, ingress: [{ from: [], ports: [] }, {}] }).policy!;
  assert.deepStrictEqual(p.ingress, [{ index: 0, peers: undefined, ports: undefined }, {
    index: 1,
    peers: undefined,
    ports: undefined,
  }]);
});

Deno.test("parsePolicy() reads the three peer forms and ipBlock with except", () => {
  const p = withSpec({
    podSelector: { matchLabels: { pod: "a" } },
    ingress: [{
      from: [
        { podSelector: { matchLabels: { pod: "b" } } },
        { namespaceSelector: { matchExpressions: [{ key: "ns", operator: "In", values: ["y"] }] } },
        { podSelector: {}, namespaceSelector: {} },
        { ipBlock: { cidr: "10.0.0.0/16", except: ["10.0.1.0/24"] } },
      ],
    }],
  }).policy!;
  const kinds = p.ingress[0].peers!.map((x) =>
    x.kind === "ipBlock"
      ? `ip ${x.cidr}-${x.except}`
      : `${x.namespaceSelector ? "ns" : ""}${x.podSelector ? "pod" : ""}`
  );
  assert.deepStrictEqual(kinds, ["pod", "ns", "nspod", "ip 10.0.0.0/16-10.0.1.0/24"]);
});

Deno.test("parsePolicy() defaults the protocol to TCP and keeps named ports and endPort", () => {
  const p = withSpec({
    podSelector: {},
    ingress: [{
      ports: [{ port: 80 }, { protocol: "UDP", port: "dns" }, { port: 8000, endPort: 8080 }, {
        protocol: "SCTP",
      }],
    }],
  }).policy!;
  assert.deepStrictEqual(p.ingress[0].ports, [
    { protocol: "TCP", port: 80 },
    { protocol: "UDP", port: "dns" },
    { protocol: "TCP", port: 8000, endPort: 8080 },
    { protocol: "SCTP" },
  ]);
});

Deno.test("parsePolicy() drops only the bad rule and reports it, naming the field", () => {
  const bad = [
    [{ ports: [{ protocol: "ICMP", port: 1 }] }, "spec.ingress[0].ports[0].protocol"],
    [{ from: [{ ipBlock: { cidr: "10.0.0.0/33" } }] }, "spec.ingress[0].from[0].ipBlock.cidr"],
    [
      { from: [{ ipBlock: { cidr: "10.0.0.0/16", except: ["10.1.0.0/24"] } }] },
      "spec.ingress[0].from[0].ipBlock.except[0]",
    ],
    [{ from: [{ ipBlock: { cidr: "10.0.0.0/16" }, podSelector: {} }] }, "spec.ingress[0].from[0]"],
    [{ from: [{}] }, "spec.ingress[0].from[0]"],
    [{ ports: [{ port: 0 }] }, "spec.ingress[0].ports[0].port"],
    [{ ports: [{ port: 90, endPort: 80 }] }, "spec.ingress[0].ports[0].endPort"],
    [{ ports: [{ port: "http", endPort: 80 }] }, "spec.ingress[0].ports[0].endPort"],
    [{ ports: [{ port: "80" }] }, "spec.ingress[0].ports[0].port"],
    [
      { from: [{ podSelector: { matchExpressions: [{ key: "a", operator: "In" }] } }] },
      "spec.ingress[0].from[0].podSelector.matchExpressions[0].values",
    ],
    [{
      from: [{
        podSelector: { matchExpressions: [{ key: "a", operator: "Exists", values: ["x"] }] },
      }],
    }, "spec.ingress[0].from[0].podSelector.matchExpressions[0].values"],
    [
      { from: [{ podSelector: { matchExpressions: [{ key: "a", operator: "Is" }] } }] },
      "spec.ingress[0].from[0].podSelector.matchExpressions[0].operator",
    ],
    [{ from: "all" }, "spec.ingress[0].from"],
  ] as const;
  for (const [r, field] of bad) {
    const { policy, issues } = withSpec({
      podSelector: {},
      ingress: [r, { ports: [{ port: 81 }] }],
    });
    assert.ok(policy, `policy kept for ${field}`);
    assert.deepStrictEqual(policy.ingressIsolated, true, "the policy still isolates");
    assert.deepStrictEqual(
      policy.ingress.map((x) => x.index),
      [1],
      `only the bad rule is dropped (${field})`,
    );
    assert.deepStrictEqual(issues.length, 1);
    assert.deepStrictEqual(issues[0].field, field);
    assert.match(issues[0].msg, /rule dropped$/);
    assert.deepStrictEqual(issues[0].policy, "NetworkPolicy x/p");
  }
});

Deno.test("parsePolicy() ignores a policy whose podSelector or identity cannot be used", () => {
  const cases: unknown[] = [
    { ...NP, metadata: meta, spec: { podSelector: { matchLabels: { a: 1 } } } },
    { ...NP, metadata: { namespace: "x" }, spec: {} },
    { ...NP, metadata: { name: "p" }, spec: {} },
    { apiVersion: "v1", kind: "Pod", metadata: meta },
    "nope",
    { apiVersion: "k8s.cni.cncf.io/v1beta1", kind: "MultiNetworkPolicy", metadata: meta, spec: {} },
  ];
  for (const c of cases) {
    const r = parsePolicy(c);
    assert.deepStrictEqual(r.policy, undefined, JSON.stringify(c));
    assert.deepStrictEqual(r.issues.length, 1);
    assert.match(r.issues[0].msg, /ignored$/);
  }
});

Deno.test("parsePolicy() takes the namespace from the caller when metadata has none", () => {
  const r = parsePolicy({ ...NP, metadata: { name: "p" }, spec: {} }, "y");
  assert.deepStrictEqual(r.policy?.namespace, "y");
  assert.deepStrictEqual(r.policy?.podSelector, { matchLabels: {}, matchExpressions: [] });
});

Deno.test("parsePolicy() reads MultiNetworkPolicy v1beta1 and v1beta2 with policy-for", () => {
  for (const v of ["v1beta1", "v1beta2"]) {
    const r = parsePolicy({
      apiVersion: `k8s.cni.cncf.io/${v}`,
      kind: "MultiNetworkPolicy",
      metadata: { ...meta, annotations: { "k8s.v1.cni.cncf.io/policy-for": "sec, other/net2" } },
      spec: { podSelector: {}, policyTypes: ["Ingress", "Egress"] },
    });
    assert.deepStrictEqual(r.issues, []);
    assert.deepStrictEqual(r.policy?.kind, "MultiNetworkPolicy");
    assert.deepStrictEqual(r.policy?.policyFor, ["x/sec", "other/net2"]);
    assert.deepStrictEqual([r.policy?.ingressIsolated, r.policy?.egressIsolated], [true, true]);
  }
});

Deno.test("parsePolicy() reports unknown policyTypes values and keeps the known", () => {
  const r = withSpec({ podSelector: {}, policyTypes: ["Egress", "Sideways"] });
  assert.deepStrictEqual([r.policy?.ingressIsolated, r.policy?.egressIsolated], [false, true]);
  assert.deepStrictEqual(r.issues.length, 1);
  assert.deepStrictEqual(r.issues[0].field, "spec.policyTypes");
});
