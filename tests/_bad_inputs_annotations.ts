/**
 * Bad pod annotations, as containerd hands them over (runtimeConfig
 * `io.kubernetes.cri.pod-annotations`): types, sizes, nesting, unicode, path tricks,
 * Multus's typed fields, CNI-Genie's syntax.
 *
 * @module
 */
import type { BadCase } from "./_bad_inputs.ts";
import { NETWORKS, networks, PODANN, withAnnotations } from "./_bad_inputs.ts";

const GENIE = "cni";
const DEFAULT_NET = "v1.multus-cni.io/default-network";

function shortForm(): BadCase[] {
  const names = [
    "nét",
    "ｎｅｔ",
    "ne\u200bt",
    "net\u202e",
    "😀",
    "NET",
    "net\u0000",
    "ne\tt",
    "../etc/passwd",
    "..",
    "ns/../x",
    "a/b/c",
    "%2e%2e/x",
    "/etc/passwd",
    "./x",
    "~root/x",
    "net.json",
    "c/",
    "/",
    "@x",
    "net-b@ééééééééx",
    "net-b@a/b",
    "net-b@..",
    "net-b@a:b",
    "net-b@x@y",
    "net-b,,net-c",
    "net-b,",
    "-net",
    "net-",
    "a".repeat(300),
  ];
  return names.map((v) => ({
    category: "annotation syntax",
    name: `networks ${JSON.stringify(v).slice(0, 30)}`,
    make: (c) => networks(c, v),
    code: 7,
    names: [NETWORKS],
  }));
}

function typed(): BadCase[] {
  const els: Array<[string, unknown, string]> = [
    ["a number as name", [{ name: 5 }], '"name"'],
    ["an empty name", [{ name: "" }], '"name"'],
    ["a number as namespace", [{ name: "net-b", namespace: 5 }], '"namespace"'],
    [
      "a namespace that is not a label",
      [{ name: "net-b", namespace: "Kube_System" }],
      "Kube_System",
    ],
    ["a number as interface", [{ name: "net-b", interface: 5 }], '"interface"'],
    [
      "an interface of 16 bytes",
      [{ name: "net-b", interface: "abcdefghijklmnop" }],
      "abcdefghijklmnop",
    ],
    ["eth0 asked again", [{ name: "net-b", interface: "eth0" }], "requested twice"],
    ["ips as a string", [{ name: "net-b", ips: "10.202.91.5" }], '"ips"'],
    ["a number in ips", [{ name: "net-b", ips: [5] }], "ips[0]"],
    ["an IP with leading zeros", [{ name: "net-b", ips: ["010.202.91.5"] }], "010.202.91.5"],
    ["a /33 in ips", [{ name: "net-b", ips: ["10.202.91.5/33"] }], "10.202.91.5/33"],
    ["an IPv6 zone in ips", [{ name: "net-b", ips: ["fe80::1%eth0"] }], "fe80::1%eth0"],
    ["a bad mac", [{ name: "net-b", mac: "zz" }], '"mac"'],
    ["a number as mac", [{ name: "net-b", mac: 5 }], '"mac"'],
    ["a mac of 5 octets", [{ name: "net-b", mac: "02:00:00:00:00" }], "02:00:00:00:00"],
    [
      "a mac with mixed separators",
      [{ name: "net-b", mac: "02:00-00:00:00:01" }],
      "02:00-00:00:00:01",
    ],
    ["a string as default-route", [{ name: "net-b", "default-route": "x" }], '"default-route"'],
    ["a gateway that is no IP", [{ name: "net-b", "default-route": ["gw"] }], '"gw"'],
    [
      "a gateway with leading zeros",
      [{ name: "net-b", "default-route": ["010.1.1.1"] }],
      "010.1.1.1",
    ],
    ["two IPv4 gateways", [{ name: "net-b", "default-route": ["10.202.91.1"] }, {
      name: "net-c",
      "default-route": ["10.202.92.1"],
    }], "two IPv4"],
    ["portMappings as an object", [{ name: "net-b", portMappings: {} }], '"portMappings"'],
    ["a null port mapping", [{ name: "net-b", portMappings: [null] }], "portMappings[0]"],
    ["a string hostPort", [{ name: "net-b", portMappings: [{ hostPort: "80" }] }], "hostPort"],
    ["a float hostPort", [{ name: "net-b", portMappings: [{ hostPort: 80.5 }] }], "hostPort"],
    [
      "a number as protocol",
      [{ name: "net-b", portMappings: [{ hostPort: 80, protocol: 6 }] }],
      "protocol",
    ],
    ["bandwidth as a number", [{ name: "net-b", bandwidth: 5 }], '"bandwidth"'],
    ["a string ingressRate", [{ name: "net-b", bandwidth: { ingressRate: "1k" } }], "ingressRate"],
    ["a float egressBurst", [{ name: "net-b", bandwidth: { egressBurst: 1.5 } }], "egressBurst"],
    ["cni-args as a string", [{ name: "net-b", "cni-args": "k=v" }], '"cni-args"'],
    ["a bad infiniband-guid", [{ name: "net-b", "infiniband-guid": "zz" }], "infiniband-guid"],
    ["a number as deviceID", [{ name: "net-b", deviceID: 5 }], '"deviceID"'],
    ["a number in the list", [5], "element 0"],
    ["null in the list", [null], "element 0"],
    ["a list in the list", [["net-b"]], "element 0"],
    ["an object, not a list", { name: "net-b" }, "list of objects"],
    ["a case-folded key of the wrong type", [{ NAME: 5 }], '"NAME"'],
  ];
  const out: BadCase[] = els.map(([name, value, word]) => ({
    category: "annotation JSON",
    name,
    make: (c) => networks(c, JSON.stringify(value)),
    code: 7,
    // A plan error (an interface asked twice) names the networks, not the annotation.
    names: word === "requested twice" ? ['"eth0"', word, "net-b"] : [NETWORKS, word],
  }));
  for (const lit of ["80.0", "8e1", "1e400", "9007199254740993", "-1.5"]) {
    out.push({
      category: "annotation JSON",
      name: `hostPort ${lit}`,
      make: (c) => networks(c, `[{"name":"net-b","portMappings":[{"hostPort":${lit}}]}]`),
      code: 7,
      names: [NETWORKS, "hostPort"],
    });
  }
  for (const text of ['[{"name":"net-b"', "[{]", '["net-b"', '{"name":}']) {
    out.push({
      category: "annotation JSON",
      name: `invalid JSON ${text}`,
      make: (c) => networks(c, text),
      code: 7,
      names: [NETWORKS, "not valid JSON"],
    });
  }
  out.push({
    category: "annotation JSON",
    name: "a 20-octet mac on a bridge network",
    make: (c) =>
      networks(
        c,
        JSON.stringify([{
          name: "net-b",
          mac: "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01",
        }]),
      ),
    code: 7,
    names: ['"mac"', "20-octet"],
  });
  return out;
}

function typesAndSizes(): BadCase[] {
  const out: BadCase[] = [];
  for (const key of [NETWORKS, DEFAULT_NET, GENIE]) {
    for (const v of [5, true, null, {}, [], ["net-b"]]) {
      out.push({
        category: "annotation types",
        name: `${key} = ${JSON.stringify(v)}`,
        make: (c) => withAnnotations(c, { [key]: v }),
        code: 7,
        names: [key, "must be a string"],
      });
    }
  }
  for (const v of ['{"k8s.v1.cni.cncf.io/networks":"net-b"}', ["net-b"], 5, true]) {
    out.push({
      category: "annotation types",
      name: `the annotations map as ${JSON.stringify(v).slice(0, 30)}`,
      make: (c) => withAnnotations(c, v),
      code: 7,
      names: [PODANN],
    });
  }
  const sizes: Array<[string, () => string, string]> = [
    ["300 KiB", () => "net-b,".repeat(50 * 1024) + "net-b", "bytes"],
    ["129 networks", () => Array.from({ length: 129 }, () => "net-b").join(","), "129 networks"],
    [
      "129 JSON networks",
      () => JSON.stringify(Array.from({ length: 129 }, () => ({ name: "net-b" }))),
      "129 networks",
    ],
    [
      "cni-args nested 40 deep",
      () => `[{"name":"net-b","cni-args":${'{"a":'.repeat(40)}1${"}".repeat(40)}}]`,
      "nested",
    ],
    ["a list nested 1000 deep", () => "[".repeat(1000) + "]".repeat(1000), "nested"],
  ];
  for (const [name, value, word] of sizes) {
    out.push({
      category: "annotation sizes",
      name,
      make: (c) => networks(c, value()),
      code: 7,
      names: [NETWORKS, word],
    });
  }
  const genie: Array<[string, string]> = [
    ["net-b@x, net-c@x", "requested twice"],
    ["net-b@x1", "eth0"],
    ["[net-b]", "comma separated"],
    ["net-a,,net-b", "empty"],
    ["NET", "NET"],
    ["net-b@a/b", "CNI_IFNAME"],
  ];
  for (const [v, word] of genie) {
    out.push({
      category: "annotation syntax",
      name: `cni ${JSON.stringify(v)}`,
      make: (c) => withAnnotations(c, { [GENIE]: v }),
      code: 7,
      names: [GENIE, word],
    });
  }
  for (const v of ["net-b,net-c", "NET", "a/b/c", '[{"name":5}]']) {
    out.push({
      category: "annotation syntax",
      name: `default-network ${JSON.stringify(v)}`,
      make: (c) => withAnnotations(c, { [DEFAULT_NET]: v }),
      code: 7,
      names: [DEFAULT_NET],
    });
  }
  return out;
}

/** The annotation cases. */
export function annotationCases(): BadCase[] {
  return [...shortForm(), ...typed(), ...typesAndSizes()];
}
