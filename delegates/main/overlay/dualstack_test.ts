/**
 * Dual stack and IPv6 only in the cluster network's config and leases (flannel's
 * EnableIPv6 / IPv6Network / IPv6SubnetLen, `v4&v6` keys, PublicIPv6 / BackendV6Data,
 * subnet.env's FLANNEL_IPV6_*), and leasing both families at once on a real etcd.
 */
import assert from "node:assert/strict";
import { CniError } from "../../../conf/errors.ts";
import { formatIp, parseCidr } from "../../../conf/ip.ts";
import { EtcdClient } from "../../../clients/etcd/client.ts";
import { haveEtcd, startEtcd } from "../../../tests/etcd_server.ts";
import {
  freeSubnets,
  leaseValue,
  networkConfigJson,
  type NodeAttrs,
  parseLease,
  parseNetworkConfig,
  sameAttrs,
  subnetFits,
  subnetKey,
} from "./network.ts";
import { acquireSubnet, readView } from "./subnets.ts";
import { formatSubnetEnv, parseSubnetEnv } from "./subnet_env.ts";
import { delegateConf, parseFlannelConf } from "./flannel.ts";
import { planPeers } from "./direct.ts";

Deno.test("network config: flannel's IPv6 fields (EnableIPv6, IPv6Network, IPv6SubnetLen)", () => {
  const ds = parseNetworkConfig(
    { Network: "10.244.0.0/16", EnableIPv6: true, IPv6Network: "fd00:10:244::/56" },
    "t",
  );
  assert.equal(ds.v4?.subnetLen, 24);
  assert.equal(ds.v6?.subnetLen, 64, "a /56 gives /64s");
  assert.equal(formatIp(ds.v6!.subnetMin), "fd00:10:244:1::", "the first /64 is skipped");
  assert.equal(formatIp(ds.v6!.subnetMax), "fd00:10:244:ff::");
  // A network smaller than a /62: subnets of prefix + 2 (four of them), as flannel.
  const small = parseNetworkConfig(
    { EnableIPv4: false, EnableIPv6: true, IPv6Network: "fd00:9::/120" },
    "t",
  );
  assert.equal(small.v4, undefined, "EnableIPv4 false: no IPv4 part");
  assert.equal(small.v6?.subnetLen, 122);
  assert.deepEqual(
    freeSubnets(small.v6!, [parseCidr("fd00:9::80/122")]).map((c) => formatIp(c.network)),
    ["fd00:9::40", "fd00:9::c0"],
  );
  assert.ok(subnetFits(ds.v6!, parseCidr("fd00:10:244:7::/64")));
  assert.ok(!subnetFits(ds.v6!, parseCidr("10.244.7.0/24")), "another family never fits");
  assert.ok(!subnetFits(ds.v4!, parseCidr("fd00:10:244:7::/64")));
  // What a node writes from a dual-stack / IPv6-only conf, read back the same.
  const seeded = JSON.parse(networkConfigJson({
    network: "10.244.0.0/16",
    ipv6Network: "fd00:10:244::/56",
    ipv6SubnetLen: 64,
    vni: 1,
    port: 8472,
  }));
  assert.deepEqual(seeded, {
    Network: "10.244.0.0/16",
    EnableIPv6: true,
    IPv6Network: "fd00:10:244::/56",
    IPv6SubnetLen: 64,
    Backend: { Type: "vxlan", VNI: 1, Port: 8472 },
  });
  const v6only = JSON.parse(
    networkConfigJson({ ipv6Network: "fd00:10:244::/56", vni: 1, port: 8472 }),
  );
  assert.equal(v6only.EnableIPv4, false);
  assert.equal(parseNetworkConfig(v6only, "t").v4, undefined);
});

Deno.test("a dual-stack and an IPv6-only lease in flannel's key and value layout", () => {
  const sn = parseCidr("10.244.3.0/24");
  const sn6 = parseCidr("fd00:10:244:3::/64");
  assert.equal(
    subnetKey("/coreos.com/network", sn, sn6),
    "/coreos.com/network/subnets/10.244.3.0-24&fd00:10:244:3::-64",
  );
  assert.equal(
    subnetKey("/coreos.com/network", undefined, sn6),
    "/coreos.com/network/subnets/0.0.0.0-0&fd00:10:244:3::-64",
  );
  const attrs = {
    node: "n1",
    publicIp: "10.0.0.5",
    publicIpv6: "fd00:232::5",
    vtepMac: "02:00:00:00:00:04",
    vtepMac6: "02:00:00:00:00:06",
    vni: 1,
    families: [4, 6] as Array<4 | 6>,
  };
  const value = leaseValue(attrs);
  // flannel's LeaseAttrs field order: PublicIP, PublicIPv6, BackendType, BackendData, BackendV6Data.
  assert.equal(
    value,
    `{"PublicIP":"10.0.0.5","PublicIPv6":"fd00:232::5","BackendType":"vxlan",` +
      `"BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:04"},` +
      `"BackendV6Data":{"VNI":1,"VtepMAC":"02:00:00:00:00:06"},"PodplexNode":"n1"}`,
  );
  const kv = {
    key: subnetKey("/p", sn, sn6),
    value,
    createRevision: 1,
    modRevision: 1,
    version: 1,
    lease: "5",
  };
  const l = parseLease(kv)!;
  assert.equal(l.subnetText, "10.244.3.0/24");
  assert.equal(l.subnet6Text, "fd00:10:244:3::/64");
  assert.equal(l.vtepMac6, "02:00:00:00:00:06");
  assert.ok(sameAttrs(l, attrs));
  assert.ok(!sameAttrs(l, { ...attrs, vtepMac6: "02:00:00:00:00:07" }), "the v6 VTEP counts");
  assert.ok(!sameAttrs(l, { ...attrs, families: [4] }), "a v4-only node publishes no v6");
  // IPv6 only: PublicIP 0.0.0.0 (flannel always writes it), no BackendData.
  const only6 = { ...attrs, families: [6] as Array<4 | 6> };
  assert.deepEqual(JSON.parse(leaseValue(only6)), {
    PublicIP: "0.0.0.0",
    PublicIPv6: "fd00:232::5",
    BackendType: "vxlan",
    BackendV6Data: { VNI: 1, VtepMAC: "02:00:00:00:00:06" },
    PodplexNode: "n1",
  });
  const l6 = parseLease({ ...kv, key: subnetKey("/p", undefined, sn6), value: leaseValue(only6) })!;
  assert.equal(l6.subnet, undefined);
  assert.equal(l6.subnetText, undefined);
  assert.equal(l6.subnet6Text, "fd00:10:244:3::/64");
  assert.ok(sameAttrs(l6, only6));
  // A key without any subnet is no lease.
  assert.equal(parseLease({ ...kv, key: "/p/subnets/0.0.0.0-0" }), undefined);
});

Deno.test("subnet.env in dual stack and IPv6 only: flannel's key order, first addresses", () => {
  const text = formatSubnetEnv({
    network: "10.244.0.0/16",
    subnet: "10.244.3.0/24",
    network6: "fd00:10:244::/56",
    subnet6: "fd00:10:244:3::/64",
    mtu: 1430,
    ipMasq: false,
  });
  assert.equal(
    text,
    "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\n" +
      "FLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET=fd00:10:244:3::1/64\n" +
      "FLANNEL_MTU=1430\nFLANNEL_IPMASQ=false\n",
  );
  // The flannel delegate reads it back: one range per family, a route per network.
  const env = parseSubnetEnv(text, "f");
  const d = delegateConf(parseFlannelConf({ name: "cbr0" }), env);
  assert.deepEqual((d.ipam as { ranges: unknown }).ranges, [
    [{ subnet: "10.244.3.0/24" }],
    [{ subnet: "fd00:10:244:3::/64" }],
  ]);
  assert.deepEqual((d.ipam as { routes: unknown }).routes, [
    { dst: "10.244.0.0/16" },
    { dst: "fd00:10:244::/56" },
  ]);
  const only6 = formatSubnetEnv({
    network: "",
    subnet: "",
    network6: "fd00:10:244::/56",
    subnet6: "fd00:10:244:3::/64",
    mtu: 1430,
    ipMasq: true,
  });
  assert.equal(
    only6,
    "FLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET=fd00:10:244:3::1/64\n" +
      "FLANNEL_MTU=1430\nFLANNEL_IPMASQ=true\n",
  );
});

Deno.test("peers in IPv6: VXLAN entries from BackendV6Data, host-gw via PublicIPv6, refusals", () => {
  const lease = (key: string, value: Record<string, unknown>) =>
    parseLease({
      key: `/p/subnets/${key}`,
      value: JSON.stringify(value),
      createRevision: 1,
      modRevision: 1,
      version: 1,
      lease: "1",
    })!;
  const v6data = (n: string) => ({ VNI: 1, VtepMAC: `02:00:00:00:06:0${n}` });
  const leases = [
    lease("10.244.1.0-24&fd00:10:244:1::-64", {
      PublicIP: "10.0.0.1",
      PublicIPv6: "fd00:232::1",
      BackendType: "vxlan",
      BackendV6Data: v6data("1"),
      PodplexNode: "n1",
    }),
    lease("10.244.2.0-24&fd00:10:244:2::-64", {
      PublicIP: "10.0.0.2",
      PublicIPv6: "fd00:232::2",
      BackendType: "vxlan",
      BackendData: { VNI: 1, VtepMAC: "02:00:00:00:04:02" },
      BackendV6Data: v6data("2"),
      PodplexNode: "n2",
    }),
    // A flanneld node of IPv4 only in a dual-stack cluster: refused for IPv6, by name.
    lease("10.244.3.0-24", {
      PublicIP: "10.0.0.3",
      PublicIPv6: null,
      BackendType: "vxlan",
      BackendData: { VNI: 1, VtepMAC: "02:00:00:00:04:03" },
    }),
    // A dual-stack lease without a v6 VTEP.
    lease("10.244.4.0-24&fd00:10:244:4::-64", {
      PublicIP: "10.0.0.4",
      PublicIPv6: "fd00:232::4",
      BackendType: "vxlan",
      BackendData: { VNI: 1, VtepMAC: "02:00:00:00:04:04" },
      PodplexNode: "n4",
    }),
  ];
  const vx = { type: "vxlan" as const, vni: 1, port: 8472, directRouting: false };
  const self = { node: "n1", ownSubnet: "fd00:10:244:1::/64" };
  const p6 = planPeers(leases, vx, self, () => true, 6);
  assert.deepEqual(p6.vxlan, [{
    subnet: "fd00:10:244:2::/64",
    gw: "fd00:10:244:2::",
    mac: "02:00:00:00:06:02",
    publicIp: "fd00:232::2",
  }]);
  assert.equal(p6.refused.length, 2, p6.refused.join("; "));
  assert.match(p6.refused[0], /node "10\.0\.0\.3" leases no IPv6 subnet/);
  assert.match(
    p6.refused[1],
    /node "n4" publishes no BackendV6Data \(VTEP\) for fd00:10:244:4::\/64/,
  );
  const p4 = planPeers(leases, vx, { node: "n1", ownSubnet: "10.244.1.0/24" }, () => true, 4);
  assert.deepEqual(p4.vxlan.map((e) => e.subnet), [
    "10.244.2.0/24",
    "10.244.3.0/24",
    "10.244.4.0/24",
  ]);
  assert.deepEqual(p4.refused, []);
  // host-gw in IPv6: a route via the peer's PublicIPv6, refused off the segment.
  const hg = (n: string, ip6: string) =>
    lease(`0.0.0.0-0&fd00:10:244:${n}::-64`, {
      PublicIP: "0.0.0.0",
      PublicIPv6: ip6,
      BackendType: "host-gw",
      PodplexNode: `n${n}`,
    });
  const hostGw = { type: "host-gw" as const, vni: 1, port: 8472, directRouting: false };
  const same = (ip: string) => ip.startsWith("fd00:232:");
  const h = planPeers(
    [hg("1", "fd00:232::1"), hg("2", "fd00:232::2"), hg("3", "fd00:99::3")],
    hostGw,
    self,
    same,
    6,
  );
  assert.deepEqual(h.direct, [{ subnet: "fd00:10:244:2::/64", via: "fd00:232::2" }]);
  assert.equal(h.refused.length, 1);
  assert.match(h.refused[0], /fd00:10:244:3::\/64 of node "n3": its PublicIP fd00:99::3 is not/);
});

const PORTS: [number, number] = [23700, 23799];
const P = "/ppv/net";
const DUAL = {
  network: "10.231.0.0/20",
  ipv6Network: "fd00:231::/60",
  vni: 1,
  port: 8472,
};

function attrs6(i: number, families: Array<4 | 6> = [4, 6]): NodeAttrs {
  return {
    node: `n${i}`,
    publicIp: `10.232.0.${10 + i}`,
    publicIpv6: `fd00:232::${(10 + i).toString(16)}`,
    vtepMac: `02:00:00:00:04:${(16 + i).toString(16)}`,
    vtepMac6: `02:00:00:00:06:${(16 + i).toString(16)}`,
    vni: 1,
    families,
  };
}

async function codeOf(p: Promise<unknown>): Promise<{ code: number; msg: string }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof CniError) return { code: err.code, msg: err.message };
    throw err;
  }
  return { code: 0, msg: "" };
}

Deno.test({
  name: "dual-stack leases: 12 nodes racing get one subnet of each family, none shared",
  ignore: !haveEtcd(),
  async fn() {
    await using etcd = await startEtcd({ portRange: PORTS });
    const seed = new EtcdClient({ endpoints: etcd.endpoints });
    // 15 subnets of each family for 12 nodes: picks collide often, in either family.
    const view = await readView(seed, P, DUAL);
    assert.equal(view.config.v6?.subnetLen, 64);
    seed.close();
    const clients = Array.from({ length: 12 }, () => new EtcdClient({ endpoints: etcd.endpoints }));
    try {
      const got = await Promise.all(
        clients.map((c, i) => acquireSubnet(c, P, attrs6(i), { ttlSec: 30 })),
      );
      const v4 = got.map((g) => g.lease.subnetText);
      const v6 = got.map((g) => g.lease.subnet6Text);
      assert.equal(new Set(v4).size, 12, `v4 duplicates in ${v4.join(" ")}`);
      assert.equal(new Set(v6).size, 12, `v6 duplicates in ${v6.join(" ")}`);
      assert.ok(v6.every((s) => s?.startsWith("fd00:231:0:") && s.endsWith("::/64")), v6.join());
      const listed = (await readView(clients[0], P)).leases;
      assert.equal(listed.length, 12, "one key per node, holding both families");
      assert.ok(listed.every((l) => l.key.includes("&fd00:231:")), listed[0].key);
      // A restart keeps both subnets (the lease says what the node publishes: renewed only).
      const again = await acquireSubnet(clients[3], P, attrs6(3), { ttlSec: 30 });
      assert.equal(again.wrote, false);
      assert.equal(again.lease.key, got[3].lease.key);
    } finally {
      for (const c of clients) c.close();
    }
  },
});

Deno.test({
  name: "IPv6-only leases, and bad dual-stack input: code 7 naming the field, nothing leased",
  ignore: !haveEtcd(),
  async fn() {
    await using etcd = await startEtcd({ portRange: PORTS });
    const c = new EtcdClient({ endpoints: etcd.endpoints });
    try {
      const only6 = { ipv6Network: "fd00:231:1::/64", ipv6SubnetLen: 66, vni: 1, port: 8472 };
      await readView(c, "/ppv/v6", only6);
      const a = await acquireSubnet(c, "/ppv/v6", attrs6(1, [6]), { ttlSec: 30 });
      assert.equal(a.lease.subnet, undefined);
      assert.match(a.lease.key, /\/ppv\/v6\/subnets\/0\.0\.0\.0-0&fd00:231:1:0:[48c]000::-66$/);
      assert.equal(JSON.parse((await c.get(a.lease.key))!.value).PublicIP, "0.0.0.0");
      // Three /66s are leasable (the first is the network's): the fourth node gets 103.
      await acquireSubnet(c, "/ppv/v6", attrs6(2, [6]), { ttlSec: 30 });
      await acquireSubnet(c, "/ppv/v6", attrs6(3, [6]), { ttlSec: 30 });
      const full = await codeOf(acquireSubnet(c, "/ppv/v6", attrs6(4, [6]), { ttlSec: 30 }));
      assert.equal(full.code, 103, full.msg);
      assert.match(full.msg, /No free \/66 left in fd00:231:1::\/64/);

      // An IPv6 network too small for its subnet length: refused when seeded, no config.
      const small = await codeOf(
        readView(c, "/ppv/bad1", { ipv6Network: "fd00:231:2::/125", vni: 1, port: 8472 }),
      );
      assert.equal(small.code, 7, small.msg);
      assert.match(
        small.msg,
        /"IPv6Network" in etcd key \/ppv\/bad1\/config: a \/125 is too small/,
      );
      const room = await codeOf(readView(c, "/ppv/bad2", { ...only6, ipv6SubnetLen: 65 }));
      assert.match(room.msg, /"IPv6SubnetLen" .*: 65 must be 66 to 126/);
      // A seed is written before it is checked (as every node reads the key): nothing leased.
      assert.equal((await c.range("/ppv/bad1/subnets/", { prefix: true })).kvs.length, 0);
      assert.equal((await c.range("/ppv/bad2/subnets/", { prefix: true })).kvs.length, 0);

      // podCIDRs without the IPv6 one while the network leases IPv6: code 7, nothing leased.
      await readView(c, P, DUAL);
      const miss = await codeOf(
        acquireSubnet(c, P, attrs6(5), { ttlSec: 30, fixed: ["10.231.5.0/24"] }),
      );
      assert.equal(miss.code, 7, miss.msg);
      assert.match(miss.msg, /podCIDRs \["10\.231\.5\.0\/24"\] of node "n5" have no IPv6 subnet/);
      assert.equal((await c.range(`${P}/subnets/`, { prefix: true })).kvs.length, 0);
      // Both given: both taken as they are.
      const both = await acquireSubnet(c, P, attrs6(5), {
        ttlSec: 30,
        fixed: ["fd00:231:0:7::/64", "10.231.5.0/24"],
      });
      assert.equal(both.lease.key, `${P}/subnets/10.231.5.0-24&fd00:231:0:7::-64`);
      // A conf whose IPv6 network differs from etcd's is refused by name.
      const differ = await codeOf(readView(c, P, { ...DUAL, ipv6Network: "fd00:231:9::/60" }));
      assert.match(
        differ.msg,
        /Invalid "ipv6Network": "fd00:231:9::\/60" differs from "fd00:231::\/60"/,
      );
    } finally {
      c.close();
    }
  },
});
