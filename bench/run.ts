/**
 * `deno task bench`: podplex against the reference CNI plugins and the kernel floor, for
 * pods with 1, 3 and 5 bridge + host-local attachments, ADD, DEL and ADD+DEL, pods one after
 * another and all at once; then the startup path and the breakdown of one podplex ADD and DEL
 * by the phases of its `PODPLEX_TRACE` marks. Prints the tables and writes
 * `bench/results/latest.{json,svg,txt}`.
 *
 * Needs root (it creates `pp` netns, bridges and veths, all removed on exit and on Ctrl-C).
 *
 * Then, when etcd is installed, the cluster IPAM's benchmark (bench/ipam_bench.ts: per-call
 * ADD+DEL against host-local, and a 3-node burst with and without block affinity), and the
 * hot-plug benchmark (bench/hotplug_bench.ts: watch event to status PATCH, 1 and 3 networks),
 * the entry's own cost (bench/entry_bench.ts: the native entry, its client and the socket, a
 * VERSION through a daemon against the exec floor), the network policy controller
 * (bench/policy_daemon_bench.ts: a policy change to enforced in 100 pods, memory with 1,000
 * pods and 200 policies known),
 * the scale bench (bench/scale_bench.ts: 1,000 pods of 3 attachments on one node, a probe
 * pod's ADD+DEL per call and thick against the empty node, GC, status, the daemon's memory
 * across 10,000 ADD/DEL cycles; --quick: 100 pods, 300 cycles),
 * the cluster network's throughput (tests/_overlay_throughput.ts: iperf3 between pods on two
 * nodes over VXLAN, host-gw and IPv6 VXLAN, as fractions of the underlay in the same run),
 * and, when containerd is installed, the CRI benchmark (bench/cri_bench.ts: a pod sandbox
 * started and stopped through containerd with the reference plugins, podplex per call, thick).
 *
 * usage: deno run -A bench/run.ts [--quick] [--rounds N] [--pods N] [--sizes 1,3,5]
 *        [--breakdown N] [--no-breakdown] [--no-ipam] [--no-hotplug] [--no-entry]
 *        [--no-policy] [--no-scale] [--no-overlay] [--no-cri]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { createFixture, type Fixture } from "./_fixture.ts";
import { buildRunner } from "./_runner.ts";
import { burst, sequential, warmUp } from "./_scenarios.ts";
import { type Breakdown, measureBreakdown } from "./_breakdown.ts";
import { type BenchResults, printReport, writeResults } from "./_report.ts";
import { cpuMs, rssKb, servedMs } from "./_daemons.ts";
import type { ThickServed } from "./_report_thick.ts";
import { formatGoals, type GoalInputs, loadAverage } from "./_goals.ts";

const progress = (s: string) => console.error(`bench: ${s}`);

function options() {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      rounds: { type: "string" },
      pods: { type: "string" },
      sizes: { type: "string", default: "1,3,5" },
      breakdown: { type: "string" },
      "no-breakdown": { type: "boolean", default: false },
      "no-ipam": { type: "boolean", default: false },
      "no-hotplug": { type: "boolean", default: false },
      "no-cri": { type: "boolean", default: false },
      "no-entry": { type: "boolean", default: false },
      "no-policy": { type: "boolean", default: false },
      "no-overlay": { type: "boolean", default: false },
      "no-scale": { type: "boolean", default: false },
      out: { type: "string", default: new URL("./results/", import.meta.url).pathname },
    },
  });
  const int = (v: string | undefined, d: number) => (v === undefined ? d : Number.parseInt(v));
  return {
    quick: values.quick,
    rounds: int(values.rounds, values.quick ? 1 : 3),
    pods: int(values.pods, values.quick ? 8 : 20),
    sizes: values.sizes.split(",").map(Number).filter((n) => n > 0),
    breakdown: values["no-breakdown"] ? 0 : int(values.breakdown, values.quick ? 5 : 15),
    out: values.out,
    ipam: !values["no-ipam"],
    hotplug: !values["no-hotplug"],
    cri: !values["no-cri"],
    entry: !values["no-entry"],
    policy: !values["no-policy"],
    overlay: !values["no-overlay"],
    scale: !values["no-scale"],
  };
}

async function machine(): Promise<Record<string, string>> {
  const text = async (cmd: string, ...args: string[]) =>
    new TextDecoder().decode(
      (await new Deno.Command(cmd, { args, stdout: "piped" }).output()).stdout,
    )
      .trim();
  return {
    kernel: await text("uname", "-r"),
    cpus: String(navigator.hardwareConcurrency),
    deno: Deno.version.deno,
    reference: "Debian containernetworking-plugins (/usr/lib/cni)",
    ip: await text("ip", "-V"),
  };
}

async function bench(f: Fixture, opts: ReturnType<typeof options>): Promise<BenchResults> {
  const jobDir = f.dir;
  progress(`warming up (pods: ${f.pods}, rounds: ${opts.rounds}, sizes: ${opts.sizes})`);
  await warmUp(f, jobDir);
  const started = performance.now();
  const seq = [];
  const bursts = [];
  const thickServed: ThickServed[] = [];
  for (const n of opts.sizes) {
    const from = f.thickLog?.().length ?? 0;
    seq.push(await sequential(f, jobDir, n, opts.rounds, progress));
    thickServed.push({ attachments: n, ...servedMs(f.thickLog?.().slice(from) ?? "") });
    bursts.push(await burst(f, jobDir, n, opts.rounds, progress));
  }
  let breakdown: Breakdown | undefined;
  if (opts.breakdown) {
    progress("breakdown of one podplex ADD and DEL");
    breakdown = await measureBreakdown(f, jobDir, opts.breakdown);
  }
  return {
    date: new Date().toISOString(),
    machine: await machine(),
    build: {
      kind: f.build.kind,
      entry: f.build.entry,
      bytes: f.build.bytes,
      artifactBytes: f.build.artifactBytes,
      denoBytes: (await Deno.stat(f.build.deno)).size,
    },
    options: { rounds: opts.rounds, pods: opts.pods, sizes: opts.sizes, quick: opts.quick },
    seconds: Math.round((performance.now() - started) / 1000),
    sequential: seq,
    burst: bursts,
    breakdown,
    daemons: {
      thick: { ...rssKb(f.thick!.pid), cpuMs: cpuMs(f.thick!.pid) },
      serve: { ...rssKb(f.daemon!.pid), cpuMs: cpuMs(f.daemon!.pid) },
    },
    thickServed,
  };
}

async function main(): Promise<number> {
  if (Deno.uid() !== 0) {
    console.error("bench: needs root (it creates netns, bridges and veths)");
    return 1;
  }
  const opts = options();
  await buildRunner();
  const f = await createFixture(opts.pods);
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    await f.cleanup();
  };
  const onSignal = () => {
    progress("interrupted, cleaning up");
    cleanup().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const loadBefore = loadAverage();
  try {
    const results = await bench(f, opts);
    const inputs: GoalInputs = { main: results, load: { before: loadBefore, after: [] } };
    // A quick run never replaces the committed results of a full one.
    const out = opts.quick ? `${opts.out}/quick` : opts.out;
    await Deno.mkdir(out, { recursive: true });
    printReport(results);
    const written = await writeResults(results, opts.out, opts.quick);
    progress(`wrote ${written.join(", ")}`);
    if (opts.ipam && await Deno.stat("/usr/bin/etcd").then(() => true, () => false)) {
      const { ipamBench } = await import("./ipam_bench.ts");
      inputs.ipam = await ipamBench({
        pods: opts.quick ? 10 : 30,
        burst: opts.quick ? 30 : 90,
        oneNodeBurstRounds: opts.quick ? 1 : 3,
        outDir: out,
      });
    }
    if (opts.hotplug) {
      progress("hot-plug (serve --dynamic-networks)");
      const { hotplugBench } = await import("./hotplug_bench.ts");
      await hotplugBench({ rounds: opts.quick ? 10 : 30, outDir: out });
    }
    if (opts.entry) {
      progress("the entry's own cost (VERSION through a daemon)");
      const { entryBench, entryReport } = await import("./entry_bench.ts");
      const r = await entryBench({ rounds: opts.quick ? 100 : 300, outDir: out });
      inputs.entry = r;
      console.log(entryReport(r));
      await Deno.writeTextFile(`${out}/entry-latest.json`, JSON.stringify(r, null, 2));
    }
    if (opts.policy) {
      progress("network policy (serve --network-policy: change to enforced, memory)");
      const { policyDaemonBench, policyDaemonReport } = await import("./policy_daemon_bench.ts");
      const r = await policyDaemonBench({ rounds: opts.quick ? 5 : 20, outDir: out });
      console.log(policyDaemonReport(r));
    }
    if (opts.scale) {
      progress("scale (one node, many pods: probe ADD+DEL, GC, status, daemon memory)");
      const { scaleBench, scaleReport } = await import("./scale_bench.ts");
      const r = await scaleBench({
        pods: opts.quick ? 100 : 1000,
        cycles: opts.quick ? 300 : 10000,
        probeRounds: opts.quick ? 3 : 10,
        outDir: out,
      });
      inputs.scale = r.goals;
      console.log(`\n${scaleReport(r)}`);
    }
    if (opts.overlay && await Deno.stat("/usr/bin/etcd").then(() => true, () => false)) {
      progress("cluster network throughput (iperf3: VXLAN, host-gw, IPv6 VXLAN vs the underlay)");
      const { overlayThroughput, formatThroughput } = await import(
        "../tests/_overlay_throughput.ts"
      );
      const t = await overlayThroughput(opts.quick ? 1 : 5, opts.quick ? 1 : 3);
      console.log(`\n${formatThroughput(t)}`);
      await Deno.writeTextFile(`${out}/overlay-latest.json`, JSON.stringify(t, null, 2) + "\n");
    }
    if (opts.cri && await Deno.stat("/usr/bin/containerd").then(() => true, () => false)) {
      progress("CRI (containerd: RunPodSandbox, StopPodSandbox + RemovePodSandbox)");
      const { criBench } = await import("./cri_bench.ts");
      await criBench({ rounds: opts.quick ? 10 : 30, outDir: out });
    }
    inputs.load.after = loadAverage();
    const report = formatGoals(inputs);
    console.log(`\n${report}`);
    const file = `${out}/targets-latest.txt`;
    await Deno.writeTextFile(file, `${results.date}\n${report}\n`);
    progress(`wrote ${file}`);
    return 0;
  } finally {
    await cleanup();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

if (import.meta.main) Deno.exit(await main());
