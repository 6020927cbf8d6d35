/**
 * The bench's output: the printed tables (medians with p10–p90, ratios, memory, bursts, the
 * issue 7 targets, the startup path and the ADD/DEL breakdown by trace phase) and the JSON,
 * SVG and text files under `bench/results/`.
 *
 * @module
 */
import type { Breakdown, ProbeBreakdown } from "./_breakdown.ts";
import { type ContenderId, CONTENDERS } from "./_fixture.ts";
import type { BurstSamples, PodSamples, ScenarioResult } from "./_scenarios.ts";
import { pairSum, r2, summarize, type Summary } from "./_stats.ts";
import { chart } from "./_svg.ts";
import { describePhase, type TraceBreakdown } from "./_trace.ts";
import { thickSection, type ThickServed } from "./_report_thick.ts";

/** Everything one bench run measured. */
export interface BenchResults {
  date: string;
  machine: Record<string, string>;
  /** What bin/podplex ran; the artifact's total bytes and its Deno binary's. */
  build: { kind: string; entry: string; bytes: number; artifactBytes?: number; denoBytes?: number };
  options: { rounds: number; pods: number; sizes: number[]; quick: boolean };
  seconds: number;
  sequential: ScenarioResult<PodSamples>[];
  burst: ScenarioResult<BurstSamples>[];
  breakdown?: Breakdown;
  /** The daemons at the end: resident memory (KiB) and CPU since they started (ms). */
  daemons?: Record<"thick" | "serve", { rss: number; anon: number; cpuMs: number }>;
  /** The thick daemon's own time of each sequential call, from its log. */
  thickServed?: ThickServed[];
}

/** ADD, DEL and ADD+DEL (same pod) summaries of one contender. */
export interface PhaseSummaries {
  add: Summary;
  del: Summary;
  addDel: Summary;
  addRssKb: Summary;
  delRssKb: Summary;
  /** CPU per ADD+DEL (processes, plus the daemon's), and the daemon's part alone (ms). */
  cpu: Summary;
  daemonCpu: Summary;
}

/** Summaries of per-pod samples. */
export function phases(s: PodSamples): PhaseSummaries {
  return {
    add: summarize(s.add),
    del: summarize(s.del),
    addDel: summarize(pairSum(s.add, s.del)),
    addRssKb: summarize(s.addRssKb),
    delRssKb: summarize(s.delRssKb),
    cpu: summarize(pairSum(s.addCpuMs ?? [], s.delCpuMs ?? [])),
    daemonCpu: summarize(pairSum(s.addDaemonCpuMs ?? [], s.delDaemonCpuMs ?? [])),
  };
}

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "-");
const cell = (s: Summary) => `${f1(s.p50)} [${f1(s.p10)}–${f1(s.p90)}]`;
const mb = (kb: number) => (kb / 1024).toFixed(1);
const ratio = (a: Summary, b: Summary) => (a.p50 / b.p50).toFixed(2);

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

function sequentialTable(results: BenchResults): string {
  const rows: string[][] = [];
  for (const s of results.sequential) {
    for (const c of CONTENDERS) {
      const p = phases(s.contenders[c]);
      rows.push([
        String(s.attachments),
        c,
        cell(p.add),
        cell(p.del),
        cell(p.addDel),
        `${mb(p.addRssKb.max)} / ${mb(p.delRssKb.max)}`,
        f1(p.cpu.p50),
      ]);
    }
  }
  return table(
    ["att", "contender", "ADD ms", "DEL ms", "ADD+DEL ms", "max RSS MB ADD/DEL", "CPU ms ADD+DEL"],
    rows,
  );
}

function ratioTable(results: BenchResults): string {
  const rows = results.sequential.map((s) => {
    const [p, ref, fl, art] = (["podplex", "reference", "floor", "artifact"] as ContenderId[])
      .map((c) => phases(s.contenders[c]));
    return [
      String(s.attachments),
      ratio(p.add, ref.add),
      ratio(p.del, ref.del),
      ratio(p.addDel, ref.addDel),
      ratio(p.addDel, fl.addDel),
      ratio(art.addDel, ref.addDel),
      ratio(art.addDel, p.addDel),
    ];
  });
  return table(
    [
      "att",
      "ADD p/ref",
      "DEL p/ref",
      "ADD+DEL p/ref",
      "ADD+DEL p/floor",
      "ADD+DEL artifact/ref",
      "ADD+DEL artifact/p",
    ],
    rows,
  );
}

function burstTable(results: BenchResults): string {
  const rows: string[][] = [];
  for (const b of results.burst) {
    for (const c of CONTENDERS) {
      const s = b.contenders[c];
      rows.push([
        String(b.attachments),
        c,
        cell(summarize(s.addMakespan)),
        cell(summarize(s.delMakespan)),
        cell(summarize(s.add)),
        cell(summarize(s.del)),
        `${mb(summarize(s.addRssKb).max)} / ${mb(summarize(s.delRssKb).max)}`,
      ]);
    }
  }
  return table(
    ["att", "contender", "ADD all ms", "DEL all ms", "ADD/pod ms", "DEL/pod ms", "max RSS MB"],
    rows,
  );
}

function traceTable(title: string, cmd: string, t: TraceBreakdown, empty: TraceBreakdown): string {
  const rows = Object.entries(t.phases).map(([key, s]) => {
    const [from, to] = key.split(" → ");
    return [key, f1(s.p50), `${f1(s.p10)}–${f1(s.p90)}`, describePhase(cmd, from, to)];
  });
  const total = Object.values(t.phases).reduce((a, s) => a + s.p50, 0);
  rows.push(["sum of medians", f1(total), "", `traced wall ${cell(t.wall)}`]);
  const e = (key: string) => f1(empty.phases[key]?.p50 ?? NaN);
  return `${title}\n${table(["phase", "p50 ms", "p10–p90", "what"], rows)}\n` +
    `  for comparison, empty deno run: exec → entry ${e("exec → entry")} ms, ` +
    `exit → reaped ${e("exit → reaped")} ms`;
}

function probeTable(add: ProbeBreakdown, del: ProbeBreakdown): string {
  const rows = Object.keys(add.parts).map((k) => [k, cell(add.parts[k]), cell(del.parts[k])]);
  const top = (p: ProbeBreakdown) =>
    p.topFfi.map((x) => `${x.symbol} ${x.ms.toFixed(2)} ms/${x.calls}x`).join(", ");
  return `${table(["part", "ADD p50 [p10–p90]", "DEL p50 [p10–p90]"], rows)}\n` +
    `  C calls per run: ADD ${add.ffiCalls}, DEL ${del.ffiCalls}; ` +
    `symbols bound: ADD ${add.symbols}, DEL ${del.symbols}\n` +
    `  slowest C functions, ADD (mean per run): ${top(add) || "none"}\n` +
    `  slowest C functions, DEL (mean per run): ${top(del) || "none"}\n` +
    `  lazily imported: ADD ${add.lazyModules.join(", ") || "none"}; ` +
    `DEL ${del.lazyModules.join(", ") || "none"}`;
}

function targets(results: BenchResults): string {
  const at = (n: number) => results.sequential.find((s) => s.attachments === n);
  const out: string[] = [];
  // Both ways podplex can be run: a process per call, and behind `podplex serve`.
  for (const name of ["podplex", "artifact", "serve"] as const) {
    const label = { podplex: "podplex", artifact: "installed artifact", serve: "podplex serve" }[
      name
    ];
    const three = at(3);
    const c3 = three?.contenders[name];
    if (three && c3) {
      const [p, ref] = [phases(c3), phases(three.contenders.reference)];
      const ok = p.addDel.p50 < ref.addDel.p50;
      out.push(
        `3 attachments, ${label} ADD+DEL faster than the reference: ${ok ? "yes" : "NO"} ` +
          `(${f1(p.addDel.p50)} vs ${f1(ref.addDel.p50)} ms, ratio ${ratio(p.addDel, ref.addDel)})`,
      );
    }
    const one = at(1);
    const c1 = one?.contenders[name];
    if (one && c1) {
      const [p, ref] = [phases(c1), phases(one.contenders.reference)];
      const r = p.addDel.p50 / ref.addDel.p50;
      out.push(
        `1 attachment, ${label} ADD+DEL within 2x of the reference bridge: ${
          r <= 2 ? "yes" : "NO"
        } ` +
          `(ratio ${r.toFixed(2)}; ADD ${ratio(p.add, ref.add)}, DEL ${ratio(p.del, ref.del)})`,
      );
    }
  }
  return out.join("\n");
}

/** The printed report. */
export function formatReport(r: BenchResults): string {
  const o = r.options;
  const parts = [
    `podplex bench ${r.date} (${r.machine.cpus} CPUs, kernel ${r.machine.kernel}, deno ${r.machine.deno}); ` +
    `${r.seconds} s measured; bin/podplex ran ${r.build.entry.replace(/.*\/dist\//, "dist/")} ` +
    `(${r.build.kind} build, ${(r.build.bytes / 1024).toFixed(0)} KiB of JS)` +
    (r.build.artifactBytes
      ? `; node artifact ${mb(r.build.artifactBytes / 1024)} MB ` +
        `(Deno ${mb((r.build.denoBytes ?? 0) / 1024)} MB)`
      : ""),
    `\nPods one after another (${o.pods} pods x ${o.rounds} rounds per cell), medians [p10–p90]`,
    sequentialTable(r),
    "\nRatios of medians (< 1: the first is faster); p = bin/podplex, artifact = the installed " +
    "node artifact exec'd directly",
    ratioTable(r),
    `\n${o.pods} pods at once (kubelet burst), ${o.rounds} rounds: whole burst and per pod`,
    burstTable(r),
    "\nIssue 7 targets",
    targets(r),
    "",
    thickSection(r),
  ];
  const b = r.breakdown;
  if (b) {
    const walls = Object.entries(b.walls)
      .map(([k, s]) => [k, cell(s), mb(b.maxRssKb[k].max)]);
    const runs = `${b.attachments} attachments, ${b.trace.add.runs} runs`;
    parts.push(
      `\nStartup path (${b.attachments} attachments, ${b.iterations} iterations): whole processes`,
      table(["process", "wall ms p50 [p10–p90]", "max RSS MB"], walls),
      "",
      traceTable(
        `One podplex ADD by phase, from its PODPLEX_TRACE marks (bin/podplex, ${runs})`,
        "ADD",
        b.trace.add,
        b.trace.empty,
      ),
      "",
      traceTable(`One podplex DEL by phase (${runs})`, "DEL", b.trace.del, b.trace.empty),
      "",
      "What the marks cannot split out of a phase (probe bundle: cli/main.ts behind timing " +
        "wrappers; these overlap the phases above)",
      probeTable(b.probe.add, b.probe.del),
    );
  }
  return parts.join("\n");
}

/** Prints the report on stdout. */
export function printReport(r: BenchResults): void {
  console.log(formatReport(r));
}

function rounded(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === "number" ? r2(v) : v)));
}

/**
 * Writes `latest.json` (summaries and raw samples) and `latest.svg`, or `quick.*` for a
 * `--quick` run so that a quick run never replaces the committed full results.
 *
 * @returns the paths written
 */
export async function writeResults(
  r: BenchResults,
  dir: string,
  quick: boolean,
): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const base = `${dir}/${quick ? "quick" : "latest"}`;
  const summary = {
    sequential: r.sequential.map((s) => ({
      attachments: s.attachments,
      ...Object.fromEntries(CONTENDERS.map((c) => [c, phases(s.contenders[c])])),
    })),
  };
  await Deno.writeTextFile(
    `${base}.json`,
    JSON.stringify(rounded({ ...r, summary }), null, 1) + "\n",
  );
  await Deno.writeTextFile(`${base}.svg`, chart(r));
  await Deno.writeTextFile(`${base}.txt`, formatReport(r) + "\n");
  return [`${base}.json`, `${base}.svg`, `${base}.txt`];
}
