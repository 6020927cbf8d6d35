import assert from "node:assert/strict";
import { CniError } from "../../../conf/errors.ts";
import { formatIp } from "../../../conf/ip.ts";
import { haveEtcd, startEtcd } from "../../../tests/etcd_server.ts";
import { tempDir } from "../../../tests/testutils.ts";
import { ctxFor } from "../host_local/_testutil.ts";
import {
  clusterAdd,
  clusterCheck,
  clusterDel,
  clusterGc,
  podplexIpam,
  whereabouts,
} from "./cluster.ts";
import { parseClusterConf } from "./conf.ts";

const ignore = !haveEtcd();

// deno-lint-ignore no-explicit-any
type Any = any;

/** A Whereabouts README conf (macvlan around it, as in the README) on our etcd and dir. */
function readmeConf(ipam: Record<string, unknown>, endpoints: string[], dir: string, node = "n1") {
  return {
    cniVersion: "0.3.0",
    name: "whereaboutsexample",
    type: "macvlan",
    master: "eth0",
    mode: "bridge",
    ipam: {
      type: "whereabouts",
      ...ipam,
      etcd_host: endpoints.join(","),
      dataDir: dir,
      node_name: node,
    },
  };
}

async function addrs(raw: Any, id: string, ifname = "eth0"): Promise<string[]> {
  const conf = whereabouts.parseConf(raw);
  const r = await clusterAdd(conf, ctxFor(raw, id, ifname));
  return (r.ips ?? []).map((i) => i.address);
}

async function failure(p: Promise<unknown>): Promise<CniError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof CniError, String(err));
    return err;
  }
  throw new Error("The call did not fail");
}

Deno.test("cluster IPAM conf: Whereabouts fields, defaults and errors naming the field", () => {
  const c = parseClusterConf({
    name: "n",
    ipam: {
      type: "whereabouts",
      range: "192.168.2.225-192.168.2.230/28",
      etcd_host: "a:1, https://b:2",
      exclude: ["192.168.2.229"],
      log_level: "debug",
    },
  });
  assert.equal(c.ranges.length, 1);
  assert.equal(c.ranges[0].subnet.prefix, 28);
  assert.equal(c.ranges[0].exclude[0].prefix, 32);
  assert.deepEqual(c.etcd.endpoints, ["a:1", "https://b:2"]);
  assert.equal(c.overlapping, true);
  assert.equal(c.blockSize4, 26);
  assert.equal(c.blockSize6, 122);
  const bad = (ipam: Record<string, unknown>, re: RegExp) =>
    assert.throws(
      () => parseClusterConf({ ipam: { etcd_host: "a:1", ...ipam } }),
      (e: Any) => e instanceof CniError && e.code === 7 && re.test(e.message),
    );
  bad({ range: "10.0.0.0/33" }, /"ipam.range": "10.0.0.0\/33" is not a CIDR/);
  bad({ range: "10.0.0.0/31" }, /no usable address/);
  bad({ range: "10.0.0.0/24", exclude: ["x"] }, /"ipam.exclude\[0\]"/);
  bad({ ipRanges: [{ range: "10.0.0.0/24", range_start: "10.0.0.x" }] }, /range_start/);
  bad({ range: "10.0.0.0/24", block_size: 40 }, /"ipam.block_size": 40/);
  bad({}, /Missing "ipam.range"/);
  assert.throws(() => parseClusterConf({ ipam: { range: "10.0.0.0/24" } }), /etcd_host/);
});

Deno.test("cluster IPAM conf: Whereabouts' flat file fills what the NAD's ipam lacks", async () => {
  await using dir = await tempDir("ppe-flat");
  const flat = `${dir.path}/whereabouts.conf`;
  await Deno.writeTextFile(
    flat,
    JSON.stringify({
      datastore: "etcd",
      etcd_host: "127.0.0.1:23790",
      log_level: "debug",
      range: "10.203.99.0/24",
    }),
  );
  const c = parseClusterConf({
    ipam: { type: "whereabouts", range: "10.203.1.0/24", configuration_path: flat },
  });
  assert.deepEqual(c.etcd.endpoints, ["127.0.0.1:23790"]);
  assert.equal(c.ranges[0].text, "10.203.1.0/24", "the NAD's own fields win");
  await Deno.writeTextFile(flat, "[1]");
  assert.throws(
    () => parseClusterConf({ ipam: { range: "10.203.1.0/24", configuration_path: flat } }),
    /Invalid Whereabouts flat file ".*whereabouts.conf": not a JSON object/,
  );
});

Deno.test({
  name: "whereabouts README examples give the addresses Whereabouts documents",
  ignore,
  async fn() {
    await using etcd = await startEtcd();
    await using dir = await tempDir("ppe-wb");
    const ep = etcd.endpoints;
    const conf = (ipam: Record<string, unknown>) => readmeConf(ipam, ep, dir.path);

    // Single range with exclusions: .225/28 is .224-.239, usable .225-.238. The README counts
    // 192.168.2.229/30 as ".229, .230, .231", but Whereabouts' code (net.ParseCIDR, then
    // Contains) excludes the whole /30, .228-.231: the code's answer is what pods get.
    const ex = conf({
      range: "192.168.2.225/28",
      exclude: ["192.168.2.229/30", "192.168.2.236/32"],
    });
    const got: string[] = [];
    for (let i = 0; i < 9; i++) got.push(...await addrs(ex, `ex${i}`));
    assert.deepEqual(got, [
      ...["225", "226", "227", "232", "233", "234", "235", "237", "238"].map((o) =>
        `192.168.2.${o}/28`
      ),
    ]);
    const full = await failure(addrs(ex, "ex-full"));
    assert.equal(full.code, 103);
    // A released address is the lowest free again.
    await clusterDel(whereabouts.parseConf(ex), ctxFor(ex, "ex2"));
    assert.deepEqual(await addrs(ex, "ex-again"), ["192.168.2.227/28"]);

    // Range-end syntax and range_start/range_end.
    const dash = conf({ range: "10.203.5.3-10.203.5.5/24" });
    assert.deepEqual([await addrs(dash, "d1"), await addrs(dash, "d2")].flat(), [
      "10.203.5.3/24",
      "10.203.5.4/24",
    ]);
    const startEnd = conf({
      range: "10.203.6.0/24",
      range_start: "10.203.6.100",
      range_end: "10.203.6.101",
    });
    const se = [];
    for (let i = 0; i < 2; i++) se.push(...await addrs(startEnd, `se${i}`));
    assert.deepEqual(se, ["10.203.6.100/24", "10.203.6.101/24"]);
    assert.equal((await failure(addrs(startEnd, "se-full"))).code, 103);

    // IPv6 with a gateway.
    const v6 = conf({ range: "2001::0/116", gateway: "2001::f:1" });
    const r6 = await clusterAdd(whereabouts.parseConf(v6), ctxFor(v6, "v6a"));
    assert.deepEqual(r6.ips, [{ address: "2001::1/116", gateway: "2001::f:1" }]);

    // ipRanges with range: the top-level range comes first; dual stack.
    const multi = conf({
      ipRanges: [{ range: "192.168.10.1/24" }, { range: "176.168.10.1/16" }],
      range: "abcd::1/64",
    });
    assert.deepEqual(await addrs(multi, "m1"), [
      "abcd::1/64",
      "192.168.10.1/24",
      "176.168.0.1/16",
    ]);
    const dual = conf({ ipRanges: [{ range: "192.168.11.1/24" }, { range: "abcd:1::1/64" }] });
    assert.deepEqual(await addrs(dual, "ds1"), ["192.168.11.1/24", "abcd:1::1/64"]);
    assert.deepEqual(await addrs(dual, "ds2"), ["192.168.11.2/24", "abcd:1::2/64"]);
  },
});

Deno.test({
  name: "whereabouts overlapping ranges: shared by default, independent when disabled or named",
  ignore,
  async fn() {
    await using etcd = await startEtcd();
    await using dir = await tempDir("ppe-ov");
    const c = (ipam: Record<string, unknown>) => readmeConf(ipam, etcd.endpoints, dir.path);
    // Two overlapping ranges (a /28 inside a /24), overlap checking on (the default).
    const a = c({ range: "10.203.7.0/24" });
    const b = c({ range: "10.203.7.0/28" });
    assert.deepEqual(await addrs(a, "a1"), ["10.203.7.1/24"]);
    assert.deepEqual(await addrs(b, "b1"), ["10.203.7.2/28"]);
    // Disabled on both: each range hands out its own lowest free address.
    const ad = c({ range: "10.203.8.0/24", enable_overlapping_ranges: false });
    const bd = c({ range: "10.203.8.0/28", enable_overlapping_ranges: false });
    assert.deepEqual(await addrs(ad, "ad1"), ["10.203.8.1/24"]);
    assert.deepEqual(await addrs(bd, "bd1"), ["10.203.8.1/28"]);
    // The same range under two network names is allocated independently.
    const n1 = c({ range: "10.203.9.0/24", network_name: "tenant-a" });
    const n2 = c({ range: "10.203.9.0/24", network_name: "tenant-b" });
    const none = c({ range: "10.203.9.0/24" });
    assert.deepEqual(await addrs(n1, "n1"), ["10.203.9.1/24"]);
    assert.deepEqual(await addrs(n2, "n2"), ["10.203.9.1/24"]);
    assert.deepEqual(await addrs(none, "n0"), ["10.203.9.1/24"]);
    assert.deepEqual(await addrs(none, "n0b"), ["10.203.9.2/24"]);
  },
});

Deno.test({
  name: "cluster IPAM: repeated ADD is idempotent; DEL by container id + ifname; CHECK; GC",
  ignore,
  async fn() {
    await using etcd = await startEtcd();
    await using dir = await tempDir("ppe-cl");
    const raw = readmeConf(
      { range: "10.203.10.0/24", type: "podplex-ipam" },
      etcd.endpoints,
      dir.path,
    );
    const conf = podplexIpam.parseConf(raw);
    const args = { K8S_POD_NAMESPACE: "ns", K8S_POD_NAME: "p" };
    const a = await clusterAdd(conf, ctxFor(raw, "c1", "net1", args));
    assert.deepEqual(await clusterAdd(conf, ctxFor(raw, "c1", "net1", args)), a);
    // Same pod, another interface: another address (never matched by pod name alone).
    const b = await clusterAdd(conf, ctxFor(raw, "c1", "net2", args));
    assert.notDeepEqual(b.ips, a.ips);
    await clusterCheck(conf, ctxFor(raw, "c1", "net1"));
    await clusterDel(conf, ctxFor(raw, "c1", "net1"));
    await clusterDel(conf, ctxFor(raw, "c1", "net1")); // idempotent
    assert.equal((await failure(clusterCheck(conf, ctxFor(raw, "c1", "net1")))).code, 3);
    await clusterCheck(conf, ctxFor(raw, "c1", "net2"));
    // GC keeps only valid attachments of this node.
    await clusterAdd(conf, ctxFor(raw, "c2", "eth0"));
    const gcRaw = {
      ...raw,
      cniVersion: "1.1.0",
      "cni.dev/valid-attachments": [{ containerID: "c2", ifname: "eth0" }],
    };
    const released = await clusterGc(podplexIpam.parseConf(gcRaw), ctxFor(gcRaw, "", ""));
    assert.deepEqual(released.map(formatIp), ["10.203.10.2"]);
    await clusterCheck(conf, ctxFor(raw, "c2", "eth0"));
  },
});
