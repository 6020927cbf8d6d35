import assert from "node:assert/strict";
import { CniError } from "../../../conf/errors.ts";
import { formatIp, parseCidr } from "../../../conf/ip.ts";
import { parseClusterNetConf } from "./conf.ts";
import {
  freeSubnets,
  leaseValue,
  networkConfigJson,
  parseLease,
  parseNetworkConfig,
  sameAttrs,
  subnetFits,
  subnetKey,
} from "./network.ts";
import { formatSubnetEnv, parseSubnetEnv } from "./subnet_env.ts";
import { delegateConf, parseFlannelConf } from "./flannel.ts";
import { planPeers } from "./direct.ts";

const codeOf = (fn: () => unknown): { code: number; msg: string } => {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return { code: err.code, msg: err.message };
    throw err;
  }
  throw new Error("did not throw");
};

Deno.test("network config: flannel's defaults (SubnetLen 24, the first subnet skipped)", () => {
  const c = parseNetworkConfig({ Network: "10.244.0.0/16" }, "t");
  assert.equal(c.v4?.subnetLen, 24);
  assert.equal(formatIp(c.v4!.subnetMin), "10.244.1.0");
  assert.equal(formatIp(c.v4!.subnetMax), "10.244.255.0");
  assert.equal(c.v6, undefined, "EnableIPv6 is false by default");
  assert.deepEqual(c.backend, { type: "vxlan", vni: 1, port: 8472, directRouting: false });
  // A /24 network: subnets of /26, four of them, the first never handed out.
  const small = parseNetworkConfig(
    { Network: "10.9.9.0/24", Backend: { VNI: 7, Port: 4789 } },
    "t",
  );
  assert.equal(small.v4?.subnetLen, 26);
  assert.deepEqual(freeSubnets(small.v4!, []).map((s) => `${formatIp(s.network)}/${s.prefix}`), [
    "10.9.9.64/26",
    "10.9.9.128/26",
    "10.9.9.192/26",
  ]);
  assert.deepEqual(small.backend, { type: "vxlan", vni: 7, port: 4789, directRouting: false });
});

Deno.test("network config: flannel's host-gw and vxlan DirectRouting backends", () => {
  const hg = parseNetworkConfig({ Network: "10.244.0.0/16", Backend: { Type: "host-gw" } }, "t");
  assert.equal(hg.backend.type, "host-gw");
  assert.equal(hg.backend.directRouting, false);
  const dr = parseNetworkConfig(
    { Network: "10.244.0.0/16", Backend: { Type: "vxlan", DirectRouting: true } },
    "t",
  );
  assert.deepEqual(dr.backend, { type: "vxlan", vni: 1, port: 8472, directRouting: true });
  // What a node writes when etcd has no config: flannel's names, read back the same.
  const written = JSON.parse(networkConfigJson({
    network: "10.244.0.0/16",
    vni: 1,
    port: 8472,
    directRouting: true,
  }));
  assert.deepEqual(written.Backend, { Type: "vxlan", VNI: 1, Port: 8472, DirectRouting: true });
  assert.deepEqual(
    JSON.parse(networkConfigJson({ network: "10.9.0.0/16", vni: 1, port: 1, backend: "host-gw" })),
    { Network: "10.9.0.0/16", Backend: { Type: "host-gw" } },
  );
  const conf = (extra: Record<string, unknown>) =>
    parseClusterNetConf({ name: "c", etcdEndpoints: "http://e:2379", node: "n", ...extra });
  assert.equal(conf({ backend: "host-gw" }).backend, "host-gw");
  assert.equal(conf({}).backend, "vxlan");
  assert.match(codeOf(() => conf({ backend: "udp" })).msg, /Invalid "backend": "udp"/);
  assert.match(
    codeOf(() => conf({ backend: "host-gw", directRouting: true })).msg,
    /Invalid "directRouting"/,
  );
});

Deno.test("network config: bad values are code 7 naming the key and the place", () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ Network: "10.0.0.0/29" }, /"Network" in t: a \/29 is too small/],
    [{ Network: "fd00::/64" }, /"Network" in t: "fd00::\/64" is not an IPv4 CIDR/],
    [{ Network: "10.0.0.0/16", SubnetLen: 17 }, /"SubnetLen" in t: 17 must be 18 to 30/],
    [
      { Network: "10.0.0.0/16", SubnetMin: "10.0.0.7" },
      /"SubnetMin" in t: "10.0.0.7" is not on a \/24/,
    ],
    [{ Network: "10.0.0.0/16", Backend: { Type: "udp" } }, /"Backend.Type" in t: "udp"/],
    [
      { Network: "10.0.0.0/16", Backend: { DirectRouting: "yes" } },
      /"Backend.DirectRouting" in t: "yes" is not a bool/,
    ],
    [{ Network: "10.0.0.0/16", EnableIPv6: true }, /Missing "IPv6Network" in t: "EnableIPv6"/],
    [
      { EnableIPv4: false, EnableIPv6: false, Network: "10.0.0.0/16" },
      /"EnableIPv4" in t: false, and "EnableIPv6" is not true/,
    ],
    [{ EnableIPv6: "yes", Network: "10.0.0.0/16" }, /"EnableIPv6" in t: "yes" is not a bool/],
    [
      { EnableIPv4: false, EnableIPv6: true, IPv6Network: "10.0.0.0/16" },
      /"IPv6Network" in t: "10.0.0.0\/16" is not an IPv6 CIDR/,
    ],
    [
      { EnableIPv4: false, EnableIPv6: true, IPv6Network: "fd00::/125" },
      /"IPv6Network" in t: a \/125 is too small \(at most \/124\)/,
    ],
    [
      { EnableIPv4: false, EnableIPv6: true, IPv6Network: "fd00::/64", IPv6SubnetLen: 63 },
      /"IPv6SubnetLen" in t: 63 must be 66 to 126/,
    ],
    [
      { EnableIPv4: false, EnableIPv6: true, IPv6Network: "fd00::/64", IPv6SubnetLen: 127 },
      /"IPv6SubnetLen" in t: 127 must be 66 to 126/,
    ],
    [
      { EnableIPv4: false, EnableIPv6: true, IPv6Network: "fd00::/48", IPv6SubnetMin: "fd01::" },
      /"IPv6SubnetMin" in t: "fd01::" is not an address of the network/,
    ],
    [
      {
        EnableIPv4: false,
        EnableIPv6: true,
        IPv6Network: "fd00::/48",
        IPv6SubnetMax: "fd00:0:0:5::1",
      },
      /"IPv6SubnetMax" in t: "fd00:0:0:5::1" is not on a \/64 boundary/,
    ],
    ["x", /not a JSON object/],
  ];
  for (const [raw, re] of cases) {
    const e = codeOf(() => parseNetworkConfig(raw, "t"));
    assert.equal(e.code, 7, e.msg);
    assert.match(e.msg, re);
  }
});

Deno.test("free subnets skip every leased one and stay in the window", () => {
  const c = parseNetworkConfig({ Network: "10.5.0.0/22", SubnetLen: 24 }, "t").v4!;
  const taken = [parseCidr("10.5.2.0/24")];
  const free = freeSubnets(c, taken).map((s) => formatIp(s.network));
  assert.deepEqual(free, ["10.5.1.0", "10.5.3.0"]);
  assert.ok(subnetFits(c, parseCidr("10.5.3.0/24")));
  assert.ok(!subnetFits(c, parseCidr("10.5.0.0/24")), "the first subnet is the network's");
  assert.ok(!subnetFits(c, parseCidr("10.5.3.0/25")), "other length");
  assert.ok(!subnetFits(c, parseCidr("10.6.1.0/24")));
});

Deno.test("a lease round-trips through flannel's key and value layout", () => {
  const attrs = { node: "n1", publicIp: "10.0.0.5", vtepMac: "0A:58:00:00:00:01", vni: 1 };
  const key = subnetKey("/coreos.com/network", parseCidr("10.244.3.0/24"));
  assert.equal(key, "/coreos.com/network/subnets/10.244.3.0-24");
  const value = leaseValue(attrs);
  assert.deepEqual(JSON.parse(value), {
    PublicIP: "10.0.0.5",
    PublicIPv6: null,
    BackendType: "vxlan",
    BackendData: { VNI: 1, VtepMAC: "0A:58:00:00:00:01" },
    PodplexNode: "n1",
  });
  const kv = { key, value, createRevision: 2, modRevision: 3, version: 1, lease: "77" };
  const l = parseLease(kv)!;
  assert.equal(l.subnetText, "10.244.3.0/24");
  assert.equal(l.vtepMac, "0a:58:00:00:00:01");
  assert.equal(l.leaseId, "77");
  assert.ok(sameAttrs(l, attrs));
  assert.ok(!sameAttrs(l, { ...attrs, publicIp: "10.0.0.6" }));
  // A flanneld lease (no PodplexNode) parses; junk does not.
  const flanneld = `{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan",` +
    `"BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}`;
  assert.equal(parseLease({ ...kv, value: flanneld })?.node, undefined);
  // A host-gw lease: no BackendData, and its MAC does not matter.
  const hg = { ...attrs, backendType: "host-gw" as const };
  assert.deepEqual(JSON.parse(leaseValue(hg)), {
    PublicIP: "10.0.0.5",
    PublicIPv6: null,
    BackendType: "host-gw",
    PodplexNode: "n1",
  });
  const hl = parseLease({ ...kv, value: leaseValue(hg) })!;
  assert.equal(hl.backendType, "host-gw");
  assert.ok(sameAttrs(hl, { ...hg, vtepMac: "02:00:00:00:00:09" }));
  assert.ok(!sameAttrs(l, hg), "a vxlan lease is not what a host-gw node publishes");
  // A dual-stack flanneld key (MakeSubnetKey's `&`): both subnets, both VTEPs.
  const ds = parseLease({
    ...kv,
    key: "/coreos.com/network/subnets/10.244.7.0-24&fd00:10:244:7::-64",
    value: `{"PublicIP":"192.168.64.3","PublicIPv6":"fd00:64::3","BackendType":"vxlan",` +
      `"BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"},` +
      `"BackendV6Data":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:45"}}`,
  })!;
  assert.equal(ds.subnetText, "10.244.7.0/24");
  assert.equal(ds.subnet6Text, "fd00:10:244:7::/64");
  assert.equal(ds.vtepMac6, "c6:d2:32:6f:8f:45");
  assert.equal(ds.vni6, 1);
  assert.equal(ds.publicIpv6, "fd00:64::3");
  assert.equal(ds.vtepMac, "c6:d2:32:6f:8f:44");
  assert.equal(
    parseLease({ ...kv, key: "/coreos.com/network/subnets/10.244.7.0-24&fd00:10:244:7::1-64" }),
    undefined,
    "the v6 part must be a network address",
  );
  assert.equal(parseLease({ ...kv, value: "{" }), undefined);
  assert.equal(parseLease({ ...kv, key: "/coreos.com/network/subnets/10.244.3.7-24" }), undefined);
});

Deno.test("subnet.env: the agent writes flannel's format; the reader takes flannel's", () => {
  const text = formatSubnetEnv({
    network: "10.244.0.0/16",
    subnet: "10.244.3.0/24",
    mtu: 1450,
    ipMasq: true,
  });
  assert.equal(
    text,
    "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
  );
  assert.deepEqual(parseSubnetEnv(text, "f"), {
    networks: ["10.244.0.0/16"],
    subnet: "10.244.3.0/24",
    mtu: 1450,
    ipMasq: true,
  });
  const dual = parseSubnetEnv(
    "FLANNEL_NETWORK=10.1.0.0/16,10.1.0.0/16\nFLANNEL_IPV6_NETWORK=fd00::/56\n" +
      "FLANNEL_IPV6_SUBNET=fd00:0:0:5::1/64\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=yes\n",
    "f",
  );
  assert.deepEqual(dual, {
    networks: ["10.1.0.0/16", "fd00::/56"],
    subnet6: "fd00:0:0:5::/64",
    mtu: 1400,
    ipMasq: false,
  });
  const e = codeOf(() => parseSubnetEnv("FLANNEL_NETWORK=10.1.0.0/16\n", "/run/x.env"));
  assert.equal(e.code, 7);
  assert.equal(
    e.msg,
    `"/run/x.env" is missing FLANNEL_SUBNET, FLANNEL_IPV6_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ`,
  );
  assert.match(codeOf(() => parseSubnetEnv(text.replace("1450", "big"), "f")).msg, /FLANNEL_MTU/);
});

Deno.test("flannel: the delegate conf is the reference's (README example, kube-flannel.yml)", () => {
  const env = { networks: ["10.1.0.0/16"], subnet: "10.1.17.0/24", mtu: 1472, ipMasq: true };
  assert.deepEqual(delegateConf(parseFlannelConf({ name: "mynet", type: "flannel" }), env), {
    name: "mynet",
    type: "bridge",
    ipMasq: false,
    mtu: 1472,
    isGateway: true,
    ipam: {
      type: "host-local",
      ranges: [[{ subnet: "10.1.17.0/24" }]],
      routes: [{ dst: "10.1.0.0/16" }],
    },
  });
  const kube = parseFlannelConf({
    name: "cbr0",
    cniVersion: "0.3.1",
    type: "flannel",
    delegate: { hairpinMode: true, isDefaultGateway: true },
    runtimeConfig: { portMappings: [] },
  });
  const d = delegateConf(kube, { ...env, ipMasq: false });
  assert.equal(d.ipMasq, true, "not FLANNEL_IPMASQ");
  assert.equal(d.cniVersion, "0.3.1");
  assert.equal(d.hairpinMode, true);
  assert.equal(d.isDefaultGateway, true);
  assert.deepEqual(d.runtimeConfig, { portMappings: [] });
  const kept = delegateConf(
    parseFlannelConf({ name: "n", delegate: { type: "ipvlan", mtu: 1400, ipMasq: true } }),
    env,
  );
  assert.deepEqual([kept.type, kept.mtu, kept.ipMasq, "isGateway" in kept], [
    "ipvlan",
    1400,
    true,
    false,
  ]);
  for (
    const [delegate, re] of [
      [{ name: "x" }, /must not have 'name'/],
      [{ ipam: {} }, /must not have 'ipam'/],
      [{ type: 5 }, /must have \(string\) 'type'/],
    ] as const
  ) {
    assert.match(codeOf(() => parseFlannelConf({ name: "n", delegate })).msg, re);
  }
});

Deno.test("cluster conf: defaults, and bad fields are code 7 naming them", () => {
  const c = parseClusterNetConf(
    { name: "cluster", etcdEndpoints: "http://a:1, http://b:2" },
    (k) => (k === "NODENAME" ? "n-7" : undefined),
  );
  assert.deepEqual(c.etcd.endpoints, ["http://a:1", "http://b:2"]);
  assert.equal(c.node, "n-7");
  assert.equal(c.vtepName, "podplex.1");
  assert.equal(c.prefix, "/coreos.com/network");
  assert.equal(c.stateDir, "/var/lib/cni/podplex-cluster/cluster");
  assert.equal(c.subnetFile, "/var/lib/cni/podplex-cluster/cluster/subnet.env");
  assert.deepEqual([c.port, c.vni, c.leaseTtlSec, c.bridge], [8472, 1, 86400, "cni0"]);
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ name: "c" }, /Missing "etcdEndpoints"/],
    [{ name: "c", etcdEndpoints: [1] }, /Invalid "etcdEndpoints"/],
    [{ name: "c", etcdEndpoints: "x", network: "10.0.0.0" }, /Invalid "network": "10.0.0.0"/],
    [{ name: "c", etcdEndpoints: "x", vni: 123456789 }, /Invalid "vni"/],
    [{ name: "c", etcdEndpoints: "x", vni: 12345678 }, /Missing "vtepName"/],
    [{ name: "c", etcdEndpoints: "x", publicIp: "fd00::1" }, /Invalid "publicIp"/],
    [{ name: "c", etcdEndpoints: "x", ipam: { subnet: "10.0.0.0/24" } }, /"ipam.subnet"/],
    [{ name: "c", etcdEndpoints: "x", etcdCertFile: "/c" }, /needs "etcdKeyFile"/],
    [{ etcdEndpoints: "x" }, /Missing "name"/],
  ];
  for (const [raw, re] of cases) {
    const e = codeOf(() => parseClusterNetConf(raw, () => undefined));
    assert.equal(e.code, 7, e.msg);
    assert.match(e.msg, re);
  }
});

Deno.test("peers: host-gw routes on-segment peers and refuses the others; DirectRouting", () => {
  const lease = (sn: string, ip: string, node: string, type = "vxlan") =>
    parseLease({
      key: `/p/subnets/${sn.replace("/", "-")}`,
      value: JSON.stringify({
        PublicIP: ip,
        BackendType: type,
        ...(type === "vxlan"
          ? { BackendData: { VNI: 1, VtepMAC: "02:00:00:00:00:0" + node } }
          : {}),
        PodplexNode: `n${node}`,
      }),
      createRevision: 1,
      modRevision: 1,
      version: 1,
      lease: "1",
    })!;
  const same = (ip: string) => ip.startsWith("10.0.0.");
  const self = { node: "n1", ownSubnet: "10.244.1.0/24" };
  const hostGw = { type: "host-gw" as const, vni: 1, port: 8472, directRouting: false };
  const hg = planPeers(
    [
      lease("10.244.1.0/24", "10.0.0.1", "1", "host-gw"),
      lease("10.244.2.0/24", "10.0.0.2", "2", "host-gw"),
      lease("10.244.3.0/24", "10.9.0.3", "3", "host-gw"),
      lease("10.244.4.0/24", "10.0.0.4", "4", "vxlan"),
    ],
    hostGw,
    self,
    same,
  );
  assert.deepEqual(hg.direct, [{ subnet: "10.244.2.0/24", via: "10.0.0.2" }]);
  assert.deepEqual(hg.vxlan, []);
  assert.equal(hg.refused.length, 1);
  assert.match(hg.refused[0], /10\.244\.3\.0\/24 of node "n3": its PublicIP 10\.9\.0\.3 is not/);
  const vx = { type: "vxlan" as const, vni: 1, port: 8472, directRouting: true };
  const leases = [lease("10.244.2.0/24", "10.0.0.2", "2"), lease("10.244.3.0/24", "10.9.0.3", "3")];
  const dr = planPeers(leases, vx, self, same);
  assert.deepEqual(dr.direct, [{ subnet: "10.244.2.0/24", via: "10.0.0.2" }]);
  assert.deepEqual(dr.vxlan.map((e) => e.subnet), ["10.244.3.0/24"]);
  const plain = planPeers(leases, { ...vx, directRouting: false }, self, same);
  assert.deepEqual(plain.direct, []);
  assert.equal(plain.vxlan.length, 2);
});
