/**
 * VXLAN throughput between pods on two nodes against the same transfer over the underlay
 * between the nodes themselves: iperf3 (one TCP stream, a bounded time) inside the test's
 * own namespaces. The ratio is printed as `overlay figure: ...`. The overlay run must have
 * gone through the VTEP (its byte counters) and reached the server from the client pod's
 * own address.
 *
 * CI: 1 s each. PODPLEX_LONG=1: 5 s each, three times, the median reported.
 */
import assert from "node:assert/strict";
import { haveEtcd } from "./etcd_server.ts";
import { OverlayRig } from "./_overlay_rig.ts";
import { isRoot, run } from "./testutils.ts";

const ignore = !isRoot || !haveEtcd();
const LONG = Deno.env.get("PODPLEX_LONG") === "1";
const SECONDS = LONG ? 5 : 1;
const RUNS = LONG ? 3 : 1;

interface Iperf {
  bps: number;
  bytes: number;
  remote: string;
}

/** One bounded iperf3 transfer from netns `client` to `ip` served in netns `server`. */
async function iperf(server: string, client: string, ip: string): Promise<Iperf> {
  const port = String(25201 + Math.floor(Math.random() * 1000));
  const srv = new Deno.Command("nsenter", {
    args: [`--net=/run/netns/${server}`, "iperf3", "-s", "-1", "-J", "-p", port],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    let out = "";
    // Until the server listens.
    for (const end = Date.now() + 15_000; Date.now() < end;) {
      const c = await new Deno.Command("nsenter", {
        args: [
          `--net=/run/netns/${client}`,
          "iperf3",
          "-c",
          ip,
          "-p",
          port,
          "-t",
          String(SECONDS),
          "-J",
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      out = new TextDecoder().decode(c.stdout);
      // With -J, iperf3 exits 0 even when it could not connect: the JSON's "error" says so.
      const error = (() => {
        try {
          return JSON.parse(out).error as string | undefined;
        } catch {
          return "not JSON";
        }
      })();
      if (c.success && !error) break;
      const why = out + new TextDecoder().decode(c.stderr);
      if (!/refused/.test(why)) throw new Error(`iperf3 client: ${why}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const j = JSON.parse(out);
    // Bounded: a server that never saw the client must not hang the test.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), 10_000));
    const done = await Promise.race([srv.output(), late]);
    clearTimeout(timer);
    if (!done) throw new Error(`iperf3 server on ${server} did not finish; client said ${out}`);
    const s = JSON.parse(new TextDecoder().decode(done.stdout));
    return {
      bps: j.end.sum_received.bits_per_second,
      bytes: j.end.sum_received.bytes,
      remote: s.start.connected[0].remote_host,
    };
  } finally {
    try {
      srv.kill("SIGKILL");
    } catch { /* exited */ }
  }
}

async function txBytes(ns: string, dev: string): Promise<number> {
  const j = JSON.parse(await run("ip", "-j", "-s", "-n", ns, "link", "show", dev));
  return j[0].stats64.tx.bytes;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

Deno.test({
  name: "cluster network: VXLAN throughput between pods on two nodes, against the underlay",
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
      const o = await iperf(b.ns, a.ns, b.ip);
      const sent = (await txBytes(n0.ns, "podplex.1")) - before;
      assert.equal(o.remote, a.ip, "the server saw the client pod's own address");
      assert.ok(sent >= o.bytes, `the transfer went through the VTEP (${sent} >= ${o.bytes})`);
      overlay.push(o.bps);
      const u = await iperf(n1.ns, n0.ns, n1.ip);
      assert.equal(u.remote, n0.ip);
      underlay.push(u.bps);
    }
    const [o, u] = [median(overlay), median(underlay)];
    assert.ok(o > 0 && u > 0);
    console.log(
      `overlay figure: throughput ${SECONDS} s x ${RUNS}: pod-to-pod over VXLAN ` +
        `${(o / 1e9).toFixed(2)} Gbit/s, node-to-node underlay ${(u / 1e9).toFixed(2)} Gbit/s, ` +
        `ratio ${(o / u).toFixed(2)}`,
    );
  },
});
