/**
 * VXLAN throughput between pods on two nodes against the same transfer over the underlay
 * between the nodes themselves: iperf3 (one TCP stream, a bounded time) inside the test's
 * own namespaces. The ratio is printed as `overlay figure: ...`. The overlay run must have
 * gone through the VTEP (its byte counters) and reached the server from the client pod's
 * own address.
 *
 * The same on two host-gw nodes (no encapsulation: expected near 1) and over IPv6 VXLAN
 * (`podplex-v6.1` over an IPv6 underlay, against the same underlay in IPv6) in the same run.
 *
 * CI: 1 s each. PODPLEX_LONG=1: 5 s each, three times, the median reported.
 */
import assert from "node:assert/strict";
import { haveEtcd } from "./etcd_server.ts";
import { OverlayRig } from "./_overlay_rig.ts";
import { isRoot } from "./testutils.ts";
import { iperf, txBytes } from "./_iperf.ts";

const ignore = !isRoot || !haveEtcd();
const LONG = Deno.env.get("PODPLEX_LONG") === "1";
const SECONDS = LONG ? 5 : 1;
const RUNS = LONG ? 3 : 1;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

Deno.test({
  name: "cluster network: VXLAN, host-gw and IPv6 VXLAN throughput between pods on two nodes, " +
    "against the underlay",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({ nodes: 2, network: "10.210.0.0/16" });
    for (let i = 0; i < 2; i++) await rig.startAgent(i);
    const [a, b] = [await rig.addPod(0), await rig.addPod(1)];
    const [n0, n1] = rig.nodes;
    const overlay: number[] = [];
    const underlay: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const before = await txBytes(n0.ns, "podplex.1");
      const o = await iperf(b.ns, a.ns, b.ip, SECONDS);
      const sent = (await txBytes(n0.ns, "podplex.1")) - before;
      assert.equal(o.remote, a.ip, "the server saw the client pod's own address");
      assert.ok(sent >= o.bytes, `the transfer went through the VTEP (${sent} >= ${o.bytes})`);
      overlay.push(o.bps);
      const u = await iperf(n1.ns, n0.ns, n1.ip, SECONDS);
      assert.equal(u.remote, n0.ip);
      underlay.push(u.bps);
    }
    const [o, u] = [median(overlay), median(underlay)];
    assert.ok(o > 0 && u > 0);
    const hg = await hostGwThroughput();
    const v6 = await vxlan6Throughput();
    const g = (bps: number) => (bps / 1e9).toFixed(2);
    console.log(
      `overlay figure: throughput ${SECONDS} s x ${RUNS}: pod-to-pod over VXLAN ` +
        `${g(o)} Gbit/s, node-to-node underlay ${g(u)} Gbit/s, ratio ${(o / u).toFixed(2)}; ` +
        `host-gw ${g(hg.pods)} Gbit/s against ${g(hg.underlay)}, ratio ` +
        `${(hg.pods / hg.underlay).toFixed(2)}; IPv6 VXLAN ${g(v6.pods)} Gbit/s against the ` +
        `IPv6 underlay's ${g(v6.underlay)}, ratio ${(v6.pods / v6.underlay).toFixed(2)}`,
    );
  },
});

/** The same pair of transfers on two host-gw nodes (names `ppg`, 10.167/10.168). */
async function hostGwThroughput(): Promise<{ pods: number; underlay: number }> {
  await using rig = await OverlayRig.start({
    nodes: 2,
    tag: "g",
    underlayBase: "10.168",
    network: "10.167.0.0/16",
    conf: { backend: "host-gw" },
  });
  for (let i = 0; i < 2; i++) await rig.startAgent(i);
  const [a, b] = [await rig.addPod(0), await rig.addPod(1)];
  const [n0, n1] = rig.nodes;
  const pods: number[] = [];
  const underlay: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const o = await iperf(b.ns, a.ns, b.ip, SECONDS);
    assert.equal(o.remote, a.ip, "host-gw: the server saw the client pod's own address");
    pods.push(o.bps);
    underlay.push((await iperf(n1.ns, n0.ns, n1.ip, SECONDS)).bps);
  }
  return { pods: median(pods), underlay: median(underlay) };
}

/**
 * The same pair over IPv6: an IPv6-only cluster network on VXLAN over an IPv6 underlay (names
 * `ppg`, 10.231 / fd31:0, pods in fd32:0:3::/56, etcd on 23950-23979).
 */
async function vxlan6Throughput(): Promise<{ pods: number; underlay: number }> {
  await using rig = await OverlayRig.start({
    nodes: 2,
    tag: "g",
    underlayBase: "10.231",
    underlay6: "fd31:0",
    etcdPorts: [23950, 23979],
    network: null,
    ipv6Network: "fd32:0:3::/56",
  });
  for (let i = 0; i < 2; i++) await rig.startAgent(i);
  const [a, b] = [await rig.addPod(0), await rig.addPod(1)];
  const [n0, n1] = rig.nodes;
  const pods: number[] = [];
  const underlay: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const before = await txBytes(n0.ns, "podplex-v6.1");
    const o = await iperf(b.ns, a.ns, b.ip, SECONDS);
    const sent = (await txBytes(n0.ns, "podplex-v6.1")) - before;
    assert.equal(o.remote, a.ip, "IPv6: the server saw the client pod's own address");
    assert.ok(sent >= o.bytes, `IPv6: the transfer went through podplex-v6.1 (${sent})`);
    pods.push(o.bps);
    const u = await iperf(n1.ns, n0.ns, n1.ip6!, SECONDS);
    assert.equal(u.remote, n0.ip6, "IPv6: the underlay run went node to node in IPv6");
    underlay.push(u.bps);
  }
  return { pods: median(pods), underlay: median(underlay) };
}
