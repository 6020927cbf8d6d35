/**
 * The CRI benchmark (part of `deno task bench`, or alone: `deno run -A bench/cri_bench.ts
 * [--rounds N]`): what a pod's start and stop cost through containerd's CRI, as kubelet
 * sees them. Three private containerd instances (tests/_containerd.ts) run side by side, each
 * with its own CNI conf dir:
 *
 * - `reference`: a conflist of the reference bridge + host-local plugins, the cluster
 *   network alone (what a node without a meta-plugin runs);
 * - `podplex per call`: the conflist `podplex install --cluster-network` writes, the same
 *   network as the cluster network, every call a process of its own;
 * - `podplex thick`: the same, with a resident `podplex serve` taking the calls through the
 *   installed shim.
 *
 * Each round starts and stops one pod on each instance in turn (interleaved, so load on the
 * machine hits all alike): RunPodSandbox (runc starts the pause container, then CNI ADD) and
 * StopPodSandbox + RemovePodSandbox (CNI DEL); podplex pods also get 0 and 2 extra networks
 * by annotation. The figures include containerd's and runc's own work, which is most of a
 * sandbox start: the `- reference` column is podplex's share.
 *
 * Writes `bench/results/cri-latest.json`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type Containerd, startContainerd } from "../tests/_containerd.ts";
import { installPodplex, serveInContainerd } from "../tests/_containerd_pods.ts";
import { ppName, tempDir, tryRun } from "../tests/testutils.ts";
import { summarize, type Summary } from "./_stats.ts";

/** One contender's samples (ms). */
export interface CriFigures {
  run: Summary;
  stop: Summary;
}

/** What the CRI benchmark measured. */
export interface CriBenchResults {
  rounds: number;
  containerd: string;
  figures: Record<string, CriFigures>;
}

const NETWORKS = "k8s.v1.cni.cncf.io/networks";
const ms = (t0: number) => performance.now() - t0;

/** Runs the benchmark: `rounds` pods per contender, after two that warm each up. */
export async function criBench(opts: { rounds: number; outDir: string }): Promise<CriBenchResults> {
  await using run = await tempDir("ppcb");
  const socket = `${run.path}/podplex.sock`;
  await using ref = await startContainerd({ plugins: ["bridge", "host-local"] });
  await using perCall = await startContainerd();
  await using thick = await startContainerd({ env: { PODPLEX_SOCKET: socket } });
  const refBridge = ppName("cb");
  await using _bridge = {
    [Symbol.asyncDispose]: async () => void await tryRun("ip", "link", "del", refBridge),
  };
  await Deno.writeTextFile(
    `${ref.confDir}/10-ref.conflist`,
    JSON.stringify({
      cniVersion: "1.0.0",
      name: "cluster",
      plugins: [{
        type: "bridge",
        bridge: refBridge,
        isGateway: true,
        ipam: { type: "host-local", subnet: "10.161.200.0/24", dataDir: `${ref.dir}/leases` },
      }],
    }),
  );
  await using _pc = await installPodplex(perCall, { octet: 210, extra: 2 });
  await using _tk = await installPodplex(thick, { octet: 220, extra: 2 });
  await using _daemon = await serveInContainerd(thick, socket);
  {
    const version = (await ref.cri.version()).runtimeVersion;
    const contenders: { name: string; c: Containerd; annotations: Record<string, string> }[] = [
      { name: "reference", c: ref, annotations: {} },
      { name: "podplex per call", c: perCall, annotations: {} },
      { name: "podplex thick", c: thick, annotations: {} },
      {
        name: "podplex per call +2 networks",
        c: perCall,
        annotations: { [NETWORKS]: "net-a,net-b" },
      },
      { name: "podplex thick +2 networks", c: thick, annotations: { [NETWORKS]: "net-a,net-b" } },
    ];
    const samples = new Map(
      contenders.map((k) => [k.name, { run: [] as number[], stop: [] as number[] }]),
    );
    for (let round = -2; round < opts.rounds; round++) {
      for (const k of contenders) {
        let t0 = performance.now();
        const id = await k.c.cri.runPodSandbox({
          name: `ppcb-${round + 2}`,
          uid: crypto.randomUUID(),
          annotations: k.annotations,
        });
        const runMs = ms(t0);
        t0 = performance.now();
        await k.c.cri.stopPodSandbox(id);
        await k.c.cri.removePodSandbox(id);
        const stopMs = ms(t0);
        if (round < 0) continue;
        samples.get(k.name)!.run.push(runMs);
        samples.get(k.name)!.stop.push(stopMs);
      }
    }
    const figures: Record<string, CriFigures> = {};
    for (const [name, s] of samples) {
      figures[name] = { run: summarize(s.run), stop: summarize(s.stop) };
    }
    const results: CriBenchResults = { rounds: opts.rounds, containerd: version, figures };
    printCri(results);
    await Deno.mkdir(opts.outDir, { recursive: true });
    await Deno.writeTextFile(
      `${opts.outDir}/cri-latest.json`,
      JSON.stringify(results, null, 2) + "\n",
    );
    return results;
  }
}

function printCri(r: CriBenchResults): void {
  const ref = r.figures.reference;
  const f = (x: number) => x.toFixed(1).padStart(7);
  console.log(
    `\nCRI: containerd ${r.containerd}, ${r.rounds} pods each (medians, ms; p90 in brackets)`,
  );
  console.log(
    "contender                        RunPodSandbox       - ref   Stop+Remove       - ref",
  );
  for (const [name, x] of Object.entries(r.figures)) {
    console.log(
      `${name.padEnd(32)} ${f(x.run.p50)} [${f(x.run.p90)}] ${f(x.run.p50 - ref.run.p50)}` +
        ` ${(x.run.p50 / ref.run.p50).toFixed(2).padStart(6)}` +
        ` ${f(x.stop.p50)} [${f(x.stop.p90)}] ${f(x.stop.p50 - ref.stop.p50)}` +
        ` ${(x.stop.p50 / ref.stop.p50).toFixed(2).padStart(6)}`,
    );
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string", default: "20" },
      out: { type: "string", default: "bench/results" },
    },
  });
  await criBench({ rounds: Number(values.rounds), outDir: values.out! });
}
