/**
 * The cluster IPAM's benchmarks (part of `deno task bench`, or alone:
 * `deno run -A bench/ipam_bench.ts [--pods N] [--burst N]`), on the simulated cluster of the
 * end-to-end tests (tests/_cluster_rig.ts: nodes are netns, etcd 3.4 is real, single member
 * on tmpfs, `bin/podplex` exec'd per call as kubelet would):
 *
 * 1. per call: one pod's ADD+DEL (bridge + this IPAM) against the same with host-local, one
 *    node, contenders alternating pod by pod in the same run; target ≤ 1.15× (issue 25);
 * 2. a 3-node burst: block affinity (default /26 blocks) against one transaction per address
 *    without blocks (`block_size: 0`, Whereabouts' cluster-wide lowest-free): makespan and
 *    median ADD;
 * 3. one node, 30 ADDs at once, cluster IPAM against host-local: makespan (median of 3
 *    rounds each, alternating); target ≤ 1.5× (issue 25).
 *
 * Writes `bench/results/ipam-latest.json`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ClusterRig, pool, type RigOptions } from "../tests/_cluster_rig.ts";

/** What the IPAM benchmark measured. */
export interface IpamBenchResults {
  perCall: { pods: number; clusterMs: number; hostLocalMs: number; ratio: number };
  burst: {
    pods: number;
    nodes: number;
    blocks: { makespanMs: number; medianAddMs: number; etcdCpuMs: number };
    noBlocks: { makespanMs: number; medianAddMs: number; etcdCpuMs: number };
    ratio: number;
  };
  /** A one-node burst of `pods` (all at once), cluster IPAM against host-local. */
  burstVsHostLocal?: {
    pods: number;
    clusterMs: number;
    hostLocalMs: number;
    ratio: number;
  };
}

const median = (a: number[]) => {
  const s = a.slice().sort((x, y) => x - y);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)];
};

async function checked(rig: ClusterRig, cmd: "ADD" | "DEL", pod: Parameters<ClusterRig["cni"]>[1]) {
  const o = await rig.cni(cmd, pod);
  if (o.code !== 0) throw new Error(`${cmd} ${pod.id} failed: ${JSON.stringify(o.json)}`);
  return o.ms;
}

/** Part 1: per-call ADD+DEL, contenders interleaved pod by pod. */
async function perCall(pods: number, progress: (s: string) => void) {
  await using cluster = await ClusterRig.start({ nodes: 1 });
  await using local = await ClusterRig.start({ nodes: 1, ipam: "host-local" });
  const cp = await cluster.makePods(pods + 2);
  const lp = await local.makePods(pods + 2);
  const c: number[] = [];
  const l: number[] = [];
  for (let i = 0; i < pods + 2; i++) {
    // Alternate who goes first, so that neither always runs right after the other.
    const order = i % 2
      ? [[local, lp, l], [cluster, cp, c]] as const
      : [[cluster, cp, c], [local, lp, l]] as const;
    for (const [rig, list, out] of order) {
      const t = await checked(rig, "ADD", list[i]) + await checked(rig, "DEL", list[i]);
      if (i >= 2) out.push(t); // the first two warm the page cache
    }
  }
  const res = { pods, clusterMs: median(c), hostLocalMs: median(l), ratio: median(c) / median(l) };
  progress(
    `per call ADD+DEL: cluster ${res.clusterMs.toFixed(1)} ms, host-local ${
      res.hostLocalMs.toFixed(1)
    } ms`,
  );
  return res;
}

/** CPU time (user + system, ms) a process has used, from /proc. */
function cpuMs(pid: number): number {
  const f = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) * 1000 / 100; // clock ticks of 10 ms
}

async function burstOnce(pods: number, o: RigOptions, width = 24) {
  await using rig = await ClusterRig.start(o);
  const list = await rig.makePods(pods);
  const pid = rig.etcd.members[0].proc!.pid;
  const cpu0 = cpuMs(pid);
  const t0 = performance.now();
  const outs = await pool(list, width, (p) => rig.cni("ADD", p));
  const makespanMs = performance.now() - t0;
  const etcdCpuMs = cpuMs(pid) - cpu0;
  for (const x of outs) {
    if (x.code !== 0) throw new Error(`burst ADD failed: ${JSON.stringify(x.json)}`);
  }
  const ips = o.ipam === "host-local"
    ? outs.map((x) => JSON.stringify((x.json as { ips?: { address: string }[] }).ips?.[0]))
    : (await rig.records()).map((r) => r.ip);
  if (new Set(ips).size !== pods) throw new Error("A duplicate address in the burst");
  await pool(list, 24, (p) => checked(rig, "DEL", p));
  return { makespanMs, medianAddMs: median(outs.map((x) => x.ms)), etcdCpuMs };
}

/** Part 2: a 3-node burst with and without blocks. */
async function burst(pods: number, progress: (s: string) => void) {
  const blocks = await burstOnce(pods, { nodes: 3 });
  const noBlocks = await burstOnce(pods, { nodes: 3, blockSize: 0 });
  progress(
    `burst of ${pods}: blocks ${blocks.makespanMs.toFixed(0)} ms, no blocks ${
      noBlocks.makespanMs.toFixed(0)
    } ms`,
  );
  return { pods, nodes: 3, blocks, noBlocks, ratio: noBlocks.makespanMs / blocks.makespanMs };
}

/** Part 3: one node, `pods` ADDs at once, cluster IPAM and host-local, `rounds` each. */
async function burstVsHostLocal(pods: number, rounds: number, progress: (s: string) => void) {
  const c: number[] = [];
  const l: number[] = [];
  for (let round = 0; round < rounds; round++) {
    l.push((await burstOnce(pods, { nodes: 1, ipam: "host-local" }, pods)).makespanMs);
    c.push((await burstOnce(pods, { nodes: 1 }, pods)).makespanMs);
  }
  const res = { pods, clusterMs: median(c), hostLocalMs: median(l), ratio: median(c) / median(l) };
  progress(
    `one-node burst of ${pods}: cluster ${res.clusterMs.toFixed(0)} ms, host-local ${
      res.hostLocalMs.toFixed(0)
    } ms`,
  );
  return res;
}

/** Runs both parts and writes `ipam-latest.json` under `outDir`. */
export async function ipamBench(
  opts: {
    pods?: number;
    burst?: number;
    oneNodeBurst?: number;
    oneNodeBurstRounds?: number;
    outDir?: string;
  },
  progress: (s: string) => void = (s) => console.error(`bench ipam: ${s}`),
): Promise<IpamBenchResults> {
  const results: IpamBenchResults = {
    perCall: await perCall(opts.pods ?? 30, progress),
    burst: await burst(opts.burst ?? 90, progress),
    burstVsHostLocal: await burstVsHostLocal(
      opts.oneNodeBurst ?? 30,
      opts.oneNodeBurstRounds ?? 3,
      progress,
    ),
  };
  printIpamReport(results);
  const dir = opts.outDir ?? new URL("./results/", import.meta.url).pathname;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/ipam-latest.json`, JSON.stringify(results, null, 2) + "\n");
  return results;
}

/** Prints the two tables. */
export function printIpamReport(r: IpamBenchResults): void {
  const p = r.perCall;
  const b = r.burst;
  console.log(
    `\ncluster IPAM (etcd) vs host-local, one pod ADD+DEL per call (median of ${p.pods}):\n` +
      `  bridge + cluster IPAM  ${p.clusterMs.toFixed(1)} ms\n` +
      `  bridge + host-local    ${p.hostLocalMs.toFixed(1)} ms\n` +
      `  ratio                  ${p.ratio.toFixed(2)}x (target <= 1.15x)\n` +
      `\n${b.nodes}-node burst of ${b.pods} pods (24 at a time):\n` +
      `  block affinity (/26)          makespan ${b.blocks.makespanMs.toFixed(0)} ms, ` +
      `median ADD ${b.blocks.medianAddMs.toFixed(0)} ms, etcd CPU ${
        b.blocks.etcdCpuMs.toFixed(0)
      } ms\n` +
      `  one txn per address, no blocks makespan ${b.noBlocks.makespanMs.toFixed(0)} ms, ` +
      `median ADD ${b.noBlocks.medianAddMs.toFixed(0)} ms, etcd CPU ${
        b.noBlocks.etcdCpuMs.toFixed(0)
      } ms\n` +
      `  no blocks / blocks            ${b.ratio.toFixed(2)}x\n` +
      (r.burstVsHostLocal
        ? `\none node, ${r.burstVsHostLocal.pods} ADDs at once (median makespan):\n` +
          `  cluster IPAM ${r.burstVsHostLocal.clusterMs.toFixed(0)} ms, host-local ` +
          `${r.burstVsHostLocal.hostLocalMs.toFixed(0)} ms, ratio ` +
          `${r.burstVsHostLocal.ratio.toFixed(2)}x\n`
        : ""),
  );
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { pods: { type: "string" }, burst: { type: "string" } },
  });
  await ipamBench({
    pods: values.pods ? Number(values.pods) : undefined,
    burst: values.burst ? Number(values.burst) : undefined,
  });
}
