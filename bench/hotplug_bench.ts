/**
 * The hot-plug benchmark (part of `deno task bench`, or alone:
 * `deno run -A bench/hotplug_bench.ts [--rounds N]`): `podplex serve --dynamic-networks` with
 * the fake API server of the tests (tests/_hotplug_daemon.ts; no kube-apiserver can run
 * here), one pod ADDed through the daemon, then its networks annotation changed: the time from
 * the change (the watch event leaves the server) to the network-status PATCH that lists every
 * new interface (sent once the last one is up and its state written), for 1 and for 3
 * bridge + host-local networks added at once, and for removing them again.
 *
 * Writes `bench/results/hotplug-latest.json`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION } from "../meta/annotations.ts";
import { hotplugNode } from "../tests/_hotplug_daemon.ts";
import { podLinks, ppdNetns } from "../tests/_hotplug_rig.ts";
import { summarize, type Summary } from "./_stats.ts";

/** What the hot-plug benchmark measured (ms from the watch event to the status PATCH). */
export interface HotplugBenchResults {
  rounds: number;
  add: Record<string, Summary>;
  remove: Record<string, Summary>;
}

const ifnamesOf = (annotations: Record<string, string>): string[] => {
  try {
    const list = JSON.parse(annotations[NETWORK_STATUS_ANNOTATION] ?? "[]") as Array<
      { interface?: string }
    >;
    return list.map((e) => e.interface ?? "");
  } catch {
    return [];
  }
};

/** Runs the benchmark: `rounds` changes per size, after two that warm the daemon up. */
export async function hotplugBench(
  opts: { rounds: number; outDir: string },
): Promise<HotplugBenchResults> {
  await using node = await hotplugNode(4, 110);
  const { api } = node;
  await using ns = await ppdNetns();
  api.addPod("default", "ppdbench");
  const add = await node.cni("ADD", "ppdbenchc", "ppdbench", ns.path);
  if (add.code !== 0) throw new Error(`ADD failed: ${add.stdout}${add.stderr}`);
  const shapes: Record<string, { value: string; ifnames: string[] }> = {
    "1": { value: "net-b@data1", ifnames: ["data1"] },
    "3": { value: "net-b@data1,net-c@data2,net-d@data3", ifnames: ["data1", "data2", "data3"] },
  };
  /** Changes the annotation and waits for the PATCH that says `done`. */
  const timed = (value: string | undefined, done: (ifnames: string[]) => boolean) =>
    new Promise<number>((resolve, reject) => {
      const { [NETWORKS_ANNOTATION]: _, ...rest } = api.pods.get("default/ppdbench")!.annotations;
      const timer = setTimeout(() => reject(new Error("no status PATCH in 30 s")), 30_000);
      let t0 = 0;
      api.onPatch = (_ns, name, annotations) => {
        if (name !== "ppdbench" || !done(ifnamesOf(annotations))) return;
        clearTimeout(timer);
        api.onPatch = undefined;
        resolve(performance.now() - t0);
      };
      t0 = performance.now();
      api.setPodAnnotations(
        "default",
        "ppdbench",
        value === undefined ? rest : { ...rest, [NETWORKS_ANNOTATION]: value },
      );
    });
  const out: HotplugBenchResults = { rounds: opts.rounds, add: {}, remove: {} };
  for (const [size, shape] of Object.entries(shapes)) {
    const adds: number[] = [];
    const removes: number[] = [];
    for (let i = 0; i < opts.rounds + 2; i++) {
      const a = await timed(shape.value, (got) => shape.ifnames.every((n) => got.includes(n)));
      const links = await podLinks(ns.name);
      if (!shape.ifnames.every((n) => links.includes(n))) throw new Error(`missing: ${links}`);
      const r = await timed(undefined, (got) => !shape.ifnames.some((n) => got.includes(n)));
      if (i >= 2) { // the first two warm the daemon's code paths and page cache
        adds.push(a);
        removes.push(r);
      }
    }
    out.add[size] = summarize(adds);
    out.remove[size] = summarize(removes);
  }
  await node.cni("DEL", "ppdbenchc", "ppdbench", ns.path);
  await Deno.mkdir(opts.outDir, { recursive: true });
  await Deno.writeTextFile(`${opts.outDir}/hotplug-latest.json`, JSON.stringify(out, null, 2));
  printHotplug(out);
  return out;
}

/** The table of the figures. */
export function printHotplug(r: HotplugBenchResults): void {
  const f = (x: number) => x.toFixed(1).padStart(7);
  console.log(
    `\nhot-plug: watch event -> interfaces up + network-status PATCHed (ms, n=${r.rounds})`,
  );
  console.log("  networks   add p50  add p90   remove p50  remove p90");
  for (const size of Object.keys(r.add)) {
    const a = r.add[size];
    const d = r.remove[size];
    console.log(`  ${size.padEnd(8)} ${f(a.p50)}  ${f(a.p90)}     ${f(d.p50)}     ${f(d.p90)}`);
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { rounds: { type: "string", default: "30" } },
  });
  await hotplugBench({
    rounds: Number(values.rounds),
    outDir: new URL("./results/", import.meta.url).pathname,
  });
}
