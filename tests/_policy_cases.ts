/**
 * The truth-table cases of the network-policy tests, modelled on the upstream e2e suite
 * (test/e2e/network/netpol): namespaces x, y, z with pods a, b, c. Each case is a list of
 * policies (and optionally label changes) and the expected verdict for every source ×
 * destination × port/protocol, written out by hand here, independently of podplex's
 * resolver. meta/policy/check_test.ts holds `policy check` to these tables, and
 * tests/policy_netns_test.ts the kernel (probes through real netns).
 *
 * A pod always reaches itself (over lo, as the upstream suite's AllowLoopback).
 *
 * @module
 */
import { mnp, np, SECONDARY } from "../meta/policy/_testing.ts";
import type { Policy, PolicyWorld, Protocol } from "../meta/policy/types.ts";

/** A pod of the model, `ns` and `pod` name. */
export interface P {
  ns: string;
  pod: string;
}

/** The expected verdict of a case for one probe. */
export type Expect = (src: P, dst: P, port: number, proto: Protocol) => boolean;

/** One case. */
export interface PolicyCase {
  name: string;
  policies: Policy[];
  /** Label changes applied to the model world before rendering. */
  mutate?: (w: PolicyWorld) => void;
  /** Expected on the cluster network (default: everything allowed). */
  cluster?: Expect;
  /** Expected on the secondary network (default: everything allowed). */
  sec?: Expect;
}

const ALL = { podSelector: {} };
const is = (p: P, id: string) => `${p.ns}/${p.pod}` === id;
const inNs = (p: P, ...ns: string[]) => ns.includes(p.ns);
const tcp80 = (port: number, proto: Protocol) => port === 80 && proto === "TCP";
const label = (w: PolicyWorld, id: string, labels: Record<string, string>) => {
  const [ns, name] = id.split("/");
  const pod = w.pods.find((p) => p.namespace === ns && p.name === name)!;
  pod.labels = { ...pod.labels, ...labels };
};
const sel = (k: string, v: string) => ({ matchLabels: { [k]: v } });
const podA = sel("pod", "a");

/** Every case; at least 30, as the issue asks. */
export const CASES: PolicyCase[] = [
  { name: "no policy: everything passes", policies: [] },
  {
    name: "default-deny ingress in x",
    policies: [np("x", "deny", { ...ALL, policyTypes: ["Ingress"] })],
    cluster: (_s, d) => !inNs(d, "x"),
  },
  {
    name: "default-deny egress in x",
    policies: [np("x", "deny", { ...ALL, policyTypes: ["Egress"] })],
    cluster: (s) => !inNs(s, "x"),
  },
  {
    name: "default-deny ingress and egress in x",
    policies: [np("x", "deny", { ...ALL, policyTypes: ["Ingress", "Egress"] })],
    cluster: (s, d) => !inNs(s, "x") && !inNs(d, "x"),
  },
  {
    name: "deny-all plus allow-all ingress in x: the allow adds up",
    policies: [np("x", "deny", ALL), np("x", "allow", { ...ALL, ingress: [{}] })],
  },
  {
    name: "allow-all egress (to: []) with deny-all egress",
    policies: [
      np("x", "deny", { ...ALL, policyTypes: ["Egress"] }),
      np("x", "allow", { ...ALL, policyTypes: ["Egress"], egress: [{ to: [] }] }),
    ],
  },
  {
    name: "x/a from namespace y only",
    policies: [
      np("x", "p", {
        podSelector: podA,
        ingress: [{ from: [{ namespaceSelector: sel("ns", "y") }] }],
      }),
    ],
    cluster: (s, d) => !is(d, "x/a") || inNs(s, "y"),
  },
  {
    name: "x/a from pod b of its own namespace (podSelector alone)",
    policies: [
      np("x", "p", { podSelector: podA, ingress: [{ from: [{ podSelector: sel("pod", "b") }] }] }),
    ],
    cluster: (s, d) => !is(d, "x/a") || is(s, "x/b"),
  },
  {
    name: "x/a from pod b in namespace y (AND form)",
    policies: [np("x", "p", {
      podSelector: podA,
      ingress: [{ from: [{ namespaceSelector: sel("ns", "y"), podSelector: sel("pod", "b") }] }],
    })],
    cluster: (s, d) => !is(d, "x/a") || is(s, "y/b"),
  },
  {
    name: "x/a from namespace y or pod b of x (OR form)",
    policies: [np("x", "p", {
      podSelector: podA,
      ingress: [{
        from: [{ namespaceSelector: sel("ns", "y") }, { podSelector: sel("pod", "b") }],
      }],
    })],
    cluster: (s, d) => !is(d, "x/a") || inNs(s, "y") || is(s, "x/b"),
  },
  {
    name: "x/a from pod b of any namespace (namespaceSelector {})",
    policies: [np("x", "p", {
      podSelector: podA,
      ingress: [{ from: [{ namespaceSelector: {}, podSelector: sel("pod", "b") }] }],
    })],
    cluster: (s, d) => !is(d, "x/a") || s.pod === "b",
  },
  {
    name: "x from namespaces NotIn (x): y and z",
    policies: [np("x", "p", {
      ...ALL,
      ingress: [{
        from: [{
          namespaceSelector: {
            matchExpressions: [{ key: "ns", operator: "NotIn", values: ["x"] }],
          },
        }],
      }],
    })],
    cluster: (s, d) => !inNs(d, "x") || !inNs(s, "x"),
  },
  {
    name: "pods without label pod=c selected (DoesNotExist/In) allow from pods with key pod In (c)",
    policies: [np("y", "p", {
      podSelector: { matchExpressions: [{ key: "pod", operator: "In", values: ["a", "b"] }] },
      ingress: [{
        from: [{
          namespaceSelector: {},
          podSelector: { matchExpressions: [{ key: "pod", operator: "In", values: ["c"] }] },
        }],
      }],
    })],
    cluster: (s, d) => !(is(d, "y/a") || is(d, "y/b")) || s.pod === "c",
  },
  {
    name: "x/a on 80/TCP from anyone",
    policies: [
      np("x", "p", { podSelector: podA, ingress: [{ ports: [{ port: 80, protocol: "TCP" }] }] }),
    ],
    cluster: (_s, d, port, proto) => !is(d, "x/a") || tcp80(port, proto),
  },
  {
    name: "x/a on 81/UDP from anyone",
    policies: [
      np("x", "p", { podSelector: podA, ingress: [{ ports: [{ port: 81, protocol: "UDP" }] }] }),
    ],
    cluster: (_s, d, port, proto) => !is(d, "x/a") || (port === 81 && proto === "UDP"),
  },
  {
    name: "x/a on the named port serve-80-tcp",
    policies: [
      np("x", "p", { podSelector: podA, ingress: [{ ports: [{ port: "serve-80-tcp" }] }] }),
    ],
    cluster: (_s, d, port, proto) => !is(d, "x/a") || tcp80(port, proto),
  },
  {
    name: "x on the named port serve-81-udp (UDP) from namespace z",
    policies: [np("x", "p", {
      ...ALL,
      ingress: [{
        from: [{ namespaceSelector: sel("ns", "z") }],
        ports: [{ port: "serve-81-udp", protocol: "UDP" }],
      }],
    })],
    cluster: (s, d, port, proto) =>
      !inNs(d, "x") || (inNs(s, "z") && port === 81 && proto === "UDP"),
  },
  {
    name: "x/a on a named port no container has: isolated, nothing opens",
    policies: [
      np("x", "p", { podSelector: podA, ingress: [{ ports: [{ port: "serve-99-tcp" }] }] }),
    ],
    cluster: (_s, d) => !is(d, "x/a"),
  },
  {
    name: "x/a on the TCP range 80-81 (endPort)",
    policies: [
      np("x", "p", { podSelector: podA, ingress: [{ ports: [{ port: 80, endPort: 81 }] }] }),
    ],
    cluster: (_s, d, _port, proto) => !is(d, "x/a") || proto === "TCP",
  },
  {
    name: "x/a on UDP, every port (protocol without port)",
    policies: [np("x", "p", { podSelector: podA, ingress: [{ ports: [{ protocol: "UDP" }] }] })],
    cluster: (_s, d, _port, proto) => !is(d, "x/a") || proto === "UDP",
  },
  {
    name: "x/a only on SCTP 80: TCP and UDP closed",
    policies: [
      np("x", "p", { podSelector: podA, ingress: [{ ports: [{ port: 80, protocol: "SCTP" }] }] }),
    ],
    cluster: (_s, d, port, proto) => !is(d, "x/a") || (port === 80 && proto === "SCTP"),
  },
  {
    name: "x/a from ipBlock 10.164.0.0/24 except y/b and z (/32 and /29)",
    policies: [np("x", "p", {
      podSelector: podA,
      ingress: [{
        from: [{
          ipBlock: { cidr: "10.164.0.0/24", except: ["10.164.0.14/32", "10.164.0.16/29"] },
        }],
      }],
    })],
    // x/a..z/c are .10-.18: y/b is .14, z/a-z/c .16-.18.
    cluster: (s, d) => !is(d, "x/a") || !(is(s, "y/b") || inNs(s, "z")),
  },
  {
    name: "y from ipBlock of z's addresses only (10.164.0.16/30)",
    policies: [
      np("y", "p", { ...ALL, ingress: [{ from: [{ ipBlock: { cidr: "10.164.0.16/30" } }] }] }),
    ],
    cluster: (s, d) => !inNs(d, "y") || ["z/a", "z/b", "z/c"].some((i) => is(s, i)),
  },
  {
    name: "x/a egress to namespace y only",
    policies: [
      np("x", "p", {
        podSelector: podA,
        policyTypes: ["Egress"],
        egress: [{ to: [{ namespaceSelector: sel("ns", "y") }] }],
      }),
    ],
    cluster: (s, d) => !is(s, "x/a") || inNs(d, "y"),
  },
  {
    name: "x egress to pods c of any namespace on 80/TCP",
    policies: [np("x", "p", {
      ...ALL,
      policyTypes: ["Egress"],
      egress: [{
        to: [{ namespaceSelector: {}, podSelector: sel("pod", "c") }],
        ports: [{ port: 80 }],
      }],
    })],
    cluster: (s, d, port, proto) => !inNs(s, "x") || (d.pod === "c" && tcp80(port, proto)),
  },
  {
    name: "x/a egress on the named port serve-81-tcp to namespace z",
    policies: [np("x", "p", {
      podSelector: podA,
      policyTypes: ["Egress"],
      egress: [{ to: [{ namespaceSelector: sel("ns", "z") }], ports: [{ port: "serve-81-tcp" }] }],
    })],
    cluster: (s, d, port, proto) =>
      !is(s, "x/a") || (inNs(d, "z") && port === 81 && proto === "TCP"),
  },
  {
    name: "x/a egress to ipBlock 10.164.0.0/24 except y (/30 .12-.15 holds x/c, y/a-y/c)",
    policies: [np("x", "p", {
      podSelector: podA,
      policyTypes: ["Egress"],
      egress: [{ to: [{ ipBlock: { cidr: "10.164.0.0/24", except: ["10.164.0.12/30"] } }] }],
    })],
    cluster: (s, d) => !is(s, "x/a") || !["x/c", "y/a", "y/b", "y/c"].some((i) => is(d, i)),
  },
  {
    name: "x/a egress on the UDP range 80-81 to anyone",
    policies: [
      np("x", "p", {
        podSelector: podA,
        policyTypes: ["Egress"],
        egress: [{ ports: [{ protocol: "UDP", port: 80, endPort: 81 }] }],
      }),
    ],
    cluster: (s, _d, _port, proto) => !is(s, "x/a") || proto === "UDP",
  },
  {
    name: "two policies on x/a add up: from y on 80/TCP, from z on 81",
    policies: [
      np("x", "p1", {
        podSelector: podA,
        ingress: [{ from: [{ namespaceSelector: sel("ns", "y") }], ports: [{ port: 80 }] }],
      }),
      np("x", "p2", {
        podSelector: podA,
        ingress: [{
          from: [{ namespaceSelector: sel("ns", "z") }],
          ports: [{ port: 81 }, { port: 81, protocol: "UDP" }],
        }],
      }),
    ],
    cluster: (s, d, port, proto) =>
      !is(d, "x/a") || (inNs(s, "y") && tcp80(port, proto)) ||
      (inNs(s, "z") && port === 81 && proto !== "SCTP"),
  },
  {
    name: "ingress deny in x and egress deny in y combined",
    policies: [
      np("x", "deny-in", ALL),
      np("y", "deny-out", { ...ALL, policyTypes: ["Egress"] }),
    ],
    cluster: (s, d) => !inNs(d, "x") && !inNs(s, "y"),
  },
  {
    name: "policyTypes Egress only: its ingress rules do nothing",
    policies: [
      np("x", "p", {
        ...ALL,
        policyTypes: ["Egress"],
        ingress: [{}],
        egress: [{ to: [{ namespaceSelector: sel("ns", "x") }] }],
      }),
    ],
    cluster: (s, d) => !inNs(s, "x") || inNs(d, "x"),
  },
  {
    name: "a pod's labels change: y/c becomes pod=b and is let into x/a",
    policies: [np("x", "p", {
      podSelector: podA,
      ingress: [{ from: [{ namespaceSelector: {}, podSelector: sel("pod", "b") }] }],
    })],
    mutate: (w) => label(w, "y/c", { pod: "b" }),
    cluster: (s, d) => !is(d, "x/a") || s.pod === "b" || is(s, "y/c"),
  },
  {
    name: "a namespace's labels change: z labelled ns=y is let into x/a",
    policies: [
      np("x", "p", {
        podSelector: podA,
        ingress: [{ from: [{ namespaceSelector: sel("ns", "y") }] }],
      }),
    ],
    mutate: (w) => {
      w.namespaces.find((n) => n.name === "z")!.labels = { ns: "y" };
    },
    cluster: (s, d) => !is(d, "x/a") || inNs(s, "y", "z"),
  },
  {
    name: "the selected pod's labels change: x/b becomes pod=a and is isolated too",
    policies: [
      np("x", "p", { podSelector: podA, ingress: [{ from: [{ podSelector: sel("pod", "c") }] }] }),
    ],
    mutate: (w) => label(w, "x/b", { pod: "a" }),
    cluster: (s, d) => !(is(d, "x/a") || is(d, "x/b")) || is(s, "x/c"),
  },
  {
    name:
      "MultiNetworkPolicy deny-all ingress on the secondary network leaves the cluster network open",
    policies: [mnp("x", "deny", SECONDARY, ALL)],
    sec: (_s, d) => !inNs(d, "x"),
  },
  {
    name: "NetworkPolicy deny-all ingress leaves the secondary network open",
    policies: [np("x", "deny", ALL)],
    cluster: (_s, d) => !inNs(d, "x"),
  },
  {
    name:
      "MultiNetworkPolicy on the secondary network: x/a from namespace y on 80/TCP, peers by their secondary address",
    policies: [mnp("x", "p", SECONDARY, {
      podSelector: podA,
      ingress: [{ from: [{ namespaceSelector: sel("ns", "y") }], ports: [{ port: 80 }] }],
    })],
    sec: (s, d, port, proto) => !is(d, "x/a") || (inNs(s, "y") && tcp80(port, proto)),
  },
  {
    name:
      "MultiNetworkPolicy egress deny on the secondary network and NetworkPolicy ingress deny on the cluster network",
    policies: [mnp("z", "out", SECONDARY, { ...ALL, policyTypes: ["Egress"] }), np("y", "in", ALL)],
    cluster: (_s, d) => !inNs(d, "y"),
    sec: (s) => !inNs(s, "z"),
  },
  {
    name: "MultiNetworkPolicy for another network changes nothing",
    policies: [mnp("x", "deny", "default/other", ALL)],
  },
];

/** The probes of a truth table: ports 80 and 81 over TCP and UDP (and SCTP when asked). */
export function probeSpace(sctp: boolean): Array<[number, Protocol]> {
  const protos: Protocol[] = sctp ? ["TCP", "UDP", "SCTP"] : ["TCP", "UDP"];
  return protos.flatMap((p) => [[80, p], [81, p]] as Array<[number, Protocol]>);
}

/** The expected verdict with loopback: a pod always reaches itself. */
export function expected(c: PolicyCase, net: "cluster" | "sec"): Expect {
  const f = c[net];
  return (s, d, port, proto) =>
    (s.ns === d.ns && s.pod === d.pod) || (f ? f(s, d, port, proto) : true);
}
