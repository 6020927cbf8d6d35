/**
 * Throughput of the cluster network between pods on two nodes against the same transfer over
 * the underlay between the nodes themselves: iperf3 (one TCP stream, a bounded time) inside
 * the caller's own namespaces, for VXLAN over IPv4, host-gw (no encapsulation: expected near
 * 1) and VXLAN over IPv6 (`podplex-v6.1` over an IPv6 underlay, against the same underlay in
 * IPv6). Each overlay run must have gone through its VTEP (its byte counters) and reached
 * the server from the client pod's own address. Used by tests/overlay_throughput_test.ts and
 * by the bench (`deno task bench`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { OverlayRig } from "./_overlay_rig.ts";
import { iperf, txBytes } from "./_iperf.ts";

/** Pods' and underlay's bits per second (medians of the runs). */
export interface PairThroughput {
  pods: number;
  underlay: number;
}

/** The three backends, measured one after the other in one run. */
export interface OverlayThroughput {
  seconds: number;
  runs: number;
  vxlan: PairThroughput;
  hostGw: PairThroughput;
  vxlan6: PairThroughput;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Measures the three backends, `runs` transfers of `seconds` each per pair. */
export async function overlayThroughput(seconds: number, runs: number): Promise<OverlayThroughput> {
  return {
    seconds,
    runs,
    vxlan: await vxlanThroughput(seconds, runs),
    hostGw: await hostGwThroughput(seconds, runs),
    vxlan6: await vxlan6Throughput(seconds, runs),
  };
}

/** The one line the test and the bench print. */
export function formatThroughput(t: OverlayThroughput): string {
  const g = (bps: number) => (bps / 1e9).toFixed(2);
  const pair = (name: string, p: PairThroughput, against: string) =>
    `${name} ${g(p.pods)} Gbit/s against ${against} ${g(p.underlay)}, ratio ${
      (p.pods / p.underlay).toFixed(2)
    }`;
  return `overlay figure: throughput ${t.seconds} s x ${t.runs}: pod to pod over ` +
    `${pair("VXLAN", t.vxlan, "the node-to-node underlay's")}; ` +
    `${pair("host-gw", t.hostGw, "the underlay's")} (expected >= 0.95); ` +
    `${pair("IPv6 VXLAN", t.vxlan6, "the IPv6 underlay's")}`;
}

/** VXLAN over IPv4 (names `ppf`, the rig's defaults, pods in 10.210.0.0/16). */
async function vxlanThroughput(seconds: number, runs: number): Promise<PairThroughput> {
  await using rig = await OverlayRig.start({ nodes: 2, network: "10.210.0.0/16" });
  for (let i = 0; i < 2; i++) await rig.startAgent(i);
  const [a, b] = [await rig.addPod(0), await rig.addPod(1)];
  const [n0, n1] = rig.nodes;
  const pods: number[] = [];
  const underlay: number[] = [];
  for (let r = 0; r < runs; r++) {
    const before = await txBytes(n0.ns, "podplex.1");
    const o = await iperf(b.ns, a.ns, b.ip, seconds);
    const sent = (await txBytes(n0.ns, "podplex.1")) - before;
    assert.equal(o.remote, a.ip, "the server saw the client pod's own address");
    assert.ok(sent >= o.bytes, `the transfer went through the VTEP (${sent} >= ${o.bytes})`);
    pods.push(o.bps);
    const u = await iperf(n1.ns, n0.ns, n1.ip, seconds);
    assert.equal(u.remote, n0.ip);
    underlay.push(u.bps);
  }
  return { pods: median(pods), underlay: median(underlay) };
}

/** The same pair of transfers on two host-gw nodes (names `ppg`, 10.167/10.168). */
async function hostGwThroughput(seconds: number, runs: number): Promise<PairThroughput> {
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
  for (let r = 0; r < runs; r++) {
    const o = await iperf(b.ns, a.ns, b.ip, seconds);
    assert.equal(o.remote, a.ip, "host-gw: the server saw the client pod's own address");
    pods.push(o.bps);
    underlay.push((await iperf(n1.ns, n0.ns, n1.ip, seconds)).bps);
  }
  return { pods: median(pods), underlay: median(underlay) };
}

/**
 * The same pair over IPv6: an IPv6-only cluster network on VXLAN over an IPv6 underlay (names
 * `ppg`, 10.231 / fd31:0, pods in fd32:0:3::/56, etcd on 23950-23979).
 */
async function vxlan6Throughput(seconds: number, runs: number): Promise<PairThroughput> {
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
  for (let r = 0; r < runs; r++) {
    const before = await txBytes(n0.ns, "podplex-v6.1");
    const o = await iperf(b.ns, a.ns, b.ip, seconds);
    const sent = (await txBytes(n0.ns, "podplex-v6.1")) - before;
    assert.equal(o.remote, a.ip, "IPv6: the server saw the client pod's own address");
    assert.ok(sent >= o.bytes, `IPv6: the transfer went through podplex-v6.1 (${sent})`);
    pods.push(o.bps);
    const u = await iperf(n1.ns, n0.ns, n1.ip6!, seconds);
    assert.equal(u.remote, n0.ip6, "IPv6: the underlay run went node to node in IPv6");
    underlay.push(u.bps);
  }
  return { pods: median(pods), underlay: median(underlay) };
}
