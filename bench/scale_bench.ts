/**
 * The scale benchmark (issue 25): one node with `--pods` pods attached (1,000 in a full run,
 * 3 bridge + host-local attachments each), and what that costs a probe pod's ADD+DEL per
 * call and in thick mode (against the same probe on the empty node, before the pods came and
 * after they went), GC with every attachment valid, `podplex status`, and the daemon's
 * anonymous memory with those pods and across `--cycles` further ADD/DEL cycles, 4 pods at a
 * time (a leak check, as MiB per 1,000 cycles).
 *
 * Both modes run the installed entry exactly as a runtime execs it: per call with no daemon
 * to reach (PODPLEX_SOCKET names none), thick through a `podplex serve` on a socket of this
 * run's own. They share one stateDir and one dataDir, as on a node whose daemon comes and
 * goes. The per-call probe is also traced (PODPLEX_TRACE marks) on the empty and the full
 * node, so what grows with the pod count is named by phase.
 *
 * usage: deno run -A bench/scale_bench.ts [--quick] [--pods N] [--cycles N] [--probe N]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { BASE_ENV, REFERENCE_DIR } from "./_contenders.ts";
import { cpuMs, rssKb } from "./_daemons.ts";
import { formatGoalTable, type Goal } from "./_goals.ts";
import { buildRunner, runPods } from "./_runner.ts";
import { summarize, type Summary } from "./_stats.ts";
import { parseTrace, summarizeTraces, type TraceBreakdown, traced } from "./_trace.ts";
import {
  ATTACHMENTS,
  cni,
  CYCLERS,
  expectPods,
  type Mode,
  MODES,
  netns,
  newWorld,
  type Probe,
  probeExecs,
  PROBES,
  progress,
  run,
  setUp,
  tearDown,
  type World,
  writeJson,
} from "./_scale_world.ts";

/** What one scale run measured. */
export interface ScaleResults {
  date: string;
  pods: number;
  cycles: number;
  /**
   * ADD+DEL of the probe pod (ms) by mode: empty node, full node, empty again; the reference
   * plugins (bridge + host-local, same bridges and dataDir) and the `ip` floor beside.
   */
  probe: Record<Probe, { empty: Summary; full: Summary; emptyAfter: Summary }>;
  /** The same calls' CPU (ms): what grows here is work, the rest of the wall's growth waits. */
  probeCpu: Record<Probe, { empty: Summary; full: Summary; emptyAfter: Summary }>;
  /** The kernel part of the processes' CPU (ms). */
  probeSys: Record<Probe, { empty: Summary; full: Summary; emptyAfter: Summary }>;
  /** The per-call probe's phases (PODPLEX_TRACE) on the empty and the full node. */
  trace: {
    add: Record<"empty" | "full", TraceBreakdown>;
    del: Record<"empty" | "full", TraceBreakdown>;
  };
  /** GC with every pod valid (ms) by mode. */
  gcMs: Record<Mode, Summary>;
  statusMs: Summary;
  /** The daemon's anonymous memory (MiB): after the fill, then after each step of cycles. */
  /**
   * `full`: the median of the samples taken with the pods in place (right after the fill and
   * after each step of cycles), since one sample alone may catch the V8 heap before a
   * collection (40 and 62 MiB in two runs here).
   */
  anonMiB: { full: number; samples: [number, number][]; perThousandCycles: number };
  fillSeconds: number;
  goals: Goal[];
}

interface ProbeSamples {
  wall: number[];
  /** CPU of the call's processes (and, thick, the daemon's over the call), ms. */
  cpu: number[];
  /** The kernel part of the processes' CPU (the daemon's is not split). */
  sys: number[];
}

/** ADD+DEL of the probe pods, `rounds` times per contender, their order rotating. */
async function probe(w: World, rounds: number): Promise<Record<Probe, ProbeSamples>> {
  const out = {} as Record<Probe, ProbeSamples>;
  for (const p of PROBES) out[p] = { wall: [], cpu: [], sys: [] };
  for (let r = 0; r < rounds; r++) {
    const order = [...PROBES.slice(r % PROBES.length), ...PROBES.slice(0, r % PROBES.length)];
    for (const p of order) {
      const add = await probeExecs(w, p, "ADD");
      const del = await probeExecs(w, p, "DEL");
      const daemon0 = p === "thick" ? cpuMs(w.daemon!.pid) : 0;
      const t = await runPods(w.dir, [{ label: `probe ${p}`, execs: [...add, ...del] }]);
      const daemon = p === "thick" ? cpuMs(w.daemon!.pid) - daemon0 : 0;
      out[p].wall.push(t.pods[0].wallMs);
      out[p].cpu.push(t.pods[0].execs.reduce((a, e) => a + e.cpuMs, daemon));
      out[p].sys.push(t.pods[0].execs.reduce((a, e) => a + e.sysMs, 0));
    }
  }
  return out;
}

/** The per-call probe traced: its ADD's and DEL's phases. */
async function traceProbe(w: World, rounds: number) {
  const add = [];
  const del = [];
  for (let r = 0; r < rounds; r++) {
    const err = [`${w.dir}/trace-add.txt`, `${w.dir}/trace-del.txt`];
    const t = await runPods(w.dir, [{
      label: "probe traced",
      execs: [
        traced(cni(w, "probe", "ADD", "per call"), err[0]),
        traced(cni(w, "probe", "DEL", "per call"), err[1]),
      ],
    }]);
    add.push(parseTrace(await Deno.readTextFile(err[0]), t.pods[0].execs[0]));
    del.push(parseTrace(await Deno.readTextFile(err[1]), t.pods[0].execs[1]));
  }
  return { add: summarizeTraces(add), del: summarizeTraces(del) };
}

/** ADD (or DEL) of every pod through the daemon, `width` at a time. */
async function fill(w: World, pods: number, cmd: "ADD" | "DEL", width = 4): Promise<void> {
  for (let j = 0; j < pods; j += width) {
    const batch = Array.from({ length: Math.min(width, pods - j) }, (_, k) => j + k);
    await runPods(
      w.dir,
      batch.map((p) => ({ label: `pod${p}`, execs: [cni(w, p, cmd, "thick")] })),
      true,
    );
    if ((j + width) % 200 < width) progress(`${cmd} ${Math.min(j + width, pods)}/${pods}`);
  }
}

/** GC with every pod valid, `rounds` times per mode; nothing may be released. */
async function gc(w: World, pods: number, rounds: number): Promise<Record<Mode, number[]>> {
  const conf = JSON.parse(await Deno.readTextFile(w.conf));
  const file = `${w.dir}/gc.json`;
  await writeJson(file, {
    ...conf,
    cniVersion: "1.1.0",
    "cni.dev/valid-attachments": Array.from(
      { length: pods },
      (_, j) => ({ containerID: `pp${w.rid}pod${j}`, ifname: "eth0" }),
    ),
  });
  const out: Record<Mode, number[]> = { "per call": [], thick: [] };
  for (let r = 0; r < rounds; r++) {
    for (const mode of MODES) {
      const env = {
        ...BASE_ENV,
        CNI_COMMAND: "GC",
        CNI_PATH: REFERENCE_DIR,
        PODPLEX_SOCKET: mode === "thick" ? w.socket : "/nonexistent/podplex.sock",
      };
      const t = await runPods(w.dir, [{
        label: `gc ${mode}`,
        execs: [{ path: w.entry, env, stdin: file }],
      }]);
      out[mode].push(t.pods[0].wallMs);
    }
  }
  expectPods(w, pods, "after GC with every pod valid");
  return out;
}

/** `podplex status --json` of the full node (its pod count checked). */
async function status(w: World, pods: number, rounds: number): Promise<number[]> {
  const report = JSON.parse(await run(w.bin, ["status", "--config", w.conf, "--json"]));
  if (report.pods !== pods) throw new Error(`podplex status says ${report.pods} pods, not ${pods}`);
  const out = [];
  for (let r = 0; r < rounds; r++) {
    const t = await runPods(w.dir, [{
      label: "status",
      execs: [{ path: w.bin, args: ["status", "--config", w.conf], env: BASE_ENV }],
    }]);
    out.push(t.pods[0].wallMs);
  }
  return out;
}

/** `cycles` ADD/DEL cycles of the probe through the daemon; its anonymous memory per step. */
async function cycles(w: World, total: number, step: number): Promise<[number, number][]> {
  const pid = w.daemon!.pid;
  const samples: [number, number][] = [[0, rssKb(pid).anon / 1024]];
  for (let done = 0; done < total; done += step) {
    // CYCLERS pods cycle at once (a node's kubelet starts and stops several pods at a time).
    const jobs = Array.from({ length: CYCLERS }, (_, k) => {
      const id = `c${k}` as const;
      const n = Math.floor(step / CYCLERS) + (k < step % CYCLERS ? 1 : 0);
      const execs = Array.from({ length: n }, () => [
        cni(w, id, "ADD", "thick"),
        cni(w, id, "DEL", "thick"),
      ]).flat();
      return { label: `cycles ${id}`, execs };
    }).filter((j) => j.execs.length > 0);
    await runPods(w.dir, jobs, true);
    samples.push([done + step, rssKb(pid).anon / 1024]);
    progress(`${done + step}/${total} cycles: daemon anon ${samples.at(-1)![1].toFixed(1)} MiB`);
  }
  return samples;
}

/** Least-squares slope of MiB over cycles, per 1,000 cycles (the first step is a warm-up). */
export function slopePerThousand(samples: [number, number][]): number {
  const xs = samples.slice(1);
  if (xs.length < 2) return NaN;
  const mx = xs.reduce((a, [x]) => a + x, 0) / xs.length;
  const my = xs.reduce((a, [, y]) => a + y, 0) / xs.length;
  const num = xs.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  const den = xs.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return (num / den) * 1000;
}

function scaleGoals(r: Omit<ScaleResults, "goals">): Goal[] {
  const f2 = (x: number) => x.toFixed(2);
  const out: Goal[] = MODES.map((m) => ({
    figure: `${m}: ADD+DEL with ${r.pods} pods / on the empty node`,
    value: r.probe[m].full.p50 / r.probe[m].empty.p50,
    target: 1.1,
    unit: "x" as const,
    detail: `${f2(r.probe[m].full.p50)} / ${f2(r.probe[m].empty.p50)} ms`,
  }));
  out.push(
    ...MODES.map((m) => ({
      figure: `${m}: GC with ${r.pods * ATTACHMENTS} valid attachments`,
      value: r.gcMs[m].p50 / 1000,
      target: 1,
      unit: "s" as const,
    })),
    {
      figure: `podplex status with ${r.pods} pods`,
      value: r.statusMs.p50 / 1000,
      target: 0.5,
      unit: "s",
    },
    {
      figure: `daemon anonymous memory with ${r.pods} pods`,
      value: r.anonMiB.full,
      target: 60,
      unit: "MiB",
    },
    {
      figure: `daemon anonymous memory growth over ${r.cycles} ADD/DEL cycles`,
      value: r.anonMiB.perThousandCycles,
      target: 0.2,
      unit: "MiB/1k",
      detail: r.anonMiB.samples.map(([, y]) => y.toFixed(1)).join(" "),
    },
  );
  return out;
}

/** The phases of the per-call probe that grew most from the empty to the full node. */
function growth(t: ScaleResults["trace"]): string[] {
  const rows: [string, number, number][] = [];
  for (const verb of ["add", "del"] as const) {
    for (const [k, s] of Object.entries(t[verb].full.phases)) {
      const e = t[verb].empty.phases[k]?.p50 ?? 0;
      rows.push([`${verb.toUpperCase()} ${k}`, e, s.p50]);
    }
  }
  return rows.sort((a, b) => (b[2] - b[1]) - (a[2] - a[1])).slice(0, 6)
    .map(([k, e, f]) => `  ${k}: ${e.toFixed(1)} -> ${f.toFixed(1)} ms`);
}

/** The printed report. */
export function scaleReport(r: ScaleResults): string {
  const p = (s: Summary) => `${s.p50.toFixed(1)} ms (p90 ${s.p90.toFixed(1)})`;
  return [
    `Scale: ${r.pods} pods x ${ATTACHMENTS} attachments (bridge + host-local), filled in ` +
    `${r.fillSeconds} s through the daemon`,
    ...PROBES.map((m) =>
      `  probe ADD+DEL, ${m}: empty ${p(r.probe[m].empty)}, full ${p(r.probe[m].full)}, ` +
      `empty again ${p(r.probe[m].emptyAfter)}; CPU ${r.probeCpu[m].empty.p50.toFixed(1)} -> ` +
      `${r.probeCpu[m].full.p50.toFixed(1)} ms (kernel ${r.probeSys[m].empty.p50.toFixed(1)} -> ` +
      `${r.probeSys[m].full.p50.toFixed(1)})`
    ),
    `Per-call phases that grew most (p50, empty -> full):`,
    ...growth(r.trace),
    formatGoalTable(r.goals),
  ].join("\n");
}

/** Runs the scale bench; writes `scale-latest.json` into `outDir`. */
export async function scaleBench(
  opts: { pods: number; cycles: number; probeRounds: number; outDir: string; keep?: boolean },
): Promise<ScaleResults> {
  await buildRunner();
  const w = await newWorld();
  try {
    await setUp(w, opts.pods);
    progress(`probe on the empty node (${opts.probeRounds} rounds per mode)`);
    const empty = await probe(w, opts.probeRounds);
    const traceEmpty = await traceProbe(w, Math.max(3, opts.probeRounds >> 1));
    const t0 = performance.now();
    await fill(w, opts.pods, "ADD");
    const fillSeconds = Math.round((performance.now() - t0) / 1000);
    expectPods(w, opts.pods, "after the fill");
    if (opts.keep) {
      // For a look at the full node by hand: the world stays until the process is stopped.
      progress(
        `kept: ${w.dir} (conf ${w.conf}, socket ${w.socket}, probe netns ${netns(w, "probe")})`,
      );
      await new Promise<void>((r) => Deno.addSignalListener("SIGINT", r));
    }
    progress(`probe with ${opts.pods} pods`);
    const full = await probe(w, opts.probeRounds);
    const traceFull = await traceProbe(w, Math.max(3, opts.probeRounds >> 1));
    progress("GC and status");
    const gcMs = await gc(w, opts.pods, 3);
    const statusMs = await status(w, opts.pods, 3);
    const step = Math.max(1, Math.min(1000, Math.round(opts.cycles / 5)));
    const samples = await cycles(w, opts.cycles, step);
    expectPods(w, opts.pods, "after the cycles");
    await fill(w, opts.pods, "DEL");
    expectPods(w, 0, "after every pod's DEL");
    progress("probe on the empty node again");
    const after = await probe(w, opts.probeRounds);
    const partial = {
      date: new Date().toISOString(),
      pods: opts.pods,
      cycles: opts.cycles,
      probe: Object.fromEntries(PROBES.map((m) => [m, {
        empty: summarize(empty[m].wall),
        full: summarize(full[m].wall),
        emptyAfter: summarize(after[m].wall),
      }])) as ScaleResults["probe"],
      probeCpu: Object.fromEntries(PROBES.map((m) => [m, {
        empty: summarize(empty[m].cpu),
        full: summarize(full[m].cpu),
        emptyAfter: summarize(after[m].cpu),
      }])) as ScaleResults["probe"],
      probeSys: Object.fromEntries(PROBES.map((m) => [m, {
        empty: summarize(empty[m].sys),
        full: summarize(full[m].sys),
        emptyAfter: summarize(after[m].sys),
      }])) as ScaleResults["probe"],
      trace: {
        add: { empty: traceEmpty.add, full: traceFull.add },
        del: { empty: traceEmpty.del, full: traceFull.del },
      },
      gcMs: { "per call": summarize(gcMs["per call"]), thick: summarize(gcMs.thick) },
      statusMs: summarize(statusMs),
      anonMiB: {
        full: summarize(samples.map(([, y]) => y)).p50,
        samples,
        perThousandCycles: slopePerThousand(samples),
      },
      fillSeconds,
    };
    const results = { ...partial, goals: scaleGoals(partial) };
    await Deno.mkdir(opts.outDir, { recursive: true });
    await Deno.writeTextFile(
      `${opts.outDir}/scale-latest.json`,
      JSON.stringify(results, null, 2) + "\n",
    );
    return results;
  } finally {
    await tearDown(w);
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      pods: { type: "string" },
      cycles: { type: "string" },
      probe: { type: "string" },
      out: { type: "string" },
      keep: { type: "boolean", default: false },
    },
  });
  const q = values.quick;
  const here = new URL("./results/", import.meta.url).pathname;
  const r = await scaleBench({
    pods: Number(values.pods ?? (q ? 100 : 1000)),
    cycles: Number(values.cycles ?? (q ? 300 : 10000)),
    probeRounds: Number(values.probe ?? (q ? 3 : 10)),
    outDir: values.out ?? (q ? `${here}quick` : here),
    keep: values.keep,
  });
  console.log(scaleReport(r));
}
