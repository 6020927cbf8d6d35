/**
 * Issue 25's targets, each next to the figure this run measured and a yes/NO: thick mode
 * against the reference, the per-call path against an empty Deno start and the reference, the
 * entry's own cost, the cluster IPAM against host-local, and (when the scale bench ran) the
 * 1,000-pod figures. Also how loaded the machine was (load average before and after) and a
 * warning when the run was too noisy to judge (p90/p50 spread of the compared cells).
 *
 * @module
 */
import type { BenchResults } from "./_report.ts";
import { phases } from "./_report.ts";
import { pairSum, summarize } from "./_stats.ts";
import type { EntryBenchResults } from "./entry_bench.ts";
import type { IpamBenchResults } from "./ipam_bench.ts";

/** One target: what was measured against what was asked. */
export interface Goal {
  figure: string;
  value: number;
  /** `le`: met when value <= target. */
  target: number;
  unit: "x" | "ms" | "MiB" | "s" | "MiB/1k";
  /** How the figure was made (the operands), for the reader. */
  detail?: string;
}

/** The sub-benchmarks' results that feed the table (each optional: a run can skip it). */
export interface GoalInputs {
  main: BenchResults;
  entry?: EntryBenchResults;
  ipam?: IpamBenchResults;
  /** The scale bench's goals, already in this shape (bench/scale_bench.ts). */
  scale?: Goal[];
  load: { before: number[]; after: number[] };
}

/** The 1/5/15-minute load averages now. */
export function loadAverage(): number[] {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).map(Number);
  } catch {
    return [];
  }
}

const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "-");

function mainGoals(r: BenchResults): Goal[] {
  const out: Goal[] = [];
  const at = (n: number) => r.sequential.find((s) => s.attachments === n);
  const thick: Record<number, number> = { 1: 0.75, 3: 0.33, 5: 0.25 };
  for (const [n, goal] of Object.entries(thick)) {
    const s = at(Number(n));
    if (!s) continue;
    const [t, ref] = [phases(s.contenders.thick), phases(s.contenders.reference)];
    out.push({
      figure: `thick ADD+DEL / reference, ${n} att`,
      value: t.addDel.p50 / ref.addDel.p50,
      target: goal,
      unit: "x",
      detail: `${f2(t.addDel.p50)} / ${f2(ref.addDel.p50)} ms`,
    });
  }
  const b3 = r.burst.find((b) => b.attachments === 3);
  if (b3) {
    const span = (c: "thick" | "reference") =>
      summarize(pairSum(b3.contenders[c].addMakespan, b3.contenders[c].delMakespan)).p50;
    out.push({
      figure: `thick ${r.options.pods}-pod burst / reference, 3 att`,
      value: span("thick") / span("reference"),
      target: 0.45,
      unit: "x",
      detail: `${f2(span("thick"))} / ${f2(span("reference"))} ms`,
    });
  }
  const one = at(1);
  if (one) {
    const [t, fl] = [phases(one.contenders.thick), phases(one.contenders.floor)];
    out.push({
      figure: "thick DEL of 1 att - the ip floor's DEL",
      value: t.del.p50 - fl.del.p50,
      target: 3,
      unit: "ms",
      detail: `${f2(t.del.p50)} - ${f2(fl.del.p50)} ms`,
    });
    const [a, ref] = [phases(one.contenders.artifact), phases(one.contenders.reference)];
    const empty = r.breakdown?.walls["empty deno run"]?.p50;
    if (empty !== undefined) {
      out.push({
        figure: "per call ADD, 1 att - an empty deno run",
        value: a.add.p50 - empty,
        target: 15,
        unit: "ms",
        detail: `${f2(a.add.p50)} - ${f2(empty)} ms`,
      });
    }
    out.push({
      figure: "per call ADD+DEL / reference, 1 att",
      value: a.addDel.p50 / ref.addDel.p50,
      target: 2,
      unit: "x",
      detail: `${f2(a.addDel.p50)} / ${f2(ref.addDel.p50)} ms`,
    }, {
      figure: "per call peak RSS (ADD, 1 att)",
      value: a.addRssKb.p50 / 1024,
      target: 38,
      unit: "MiB",
    }, {
      figure: "per call CPU per ADD+DEL / reference, 1 att",
      value: a.cpu.p50 / ref.cpu.p50,
      target: 2.5,
      unit: "x",
      detail: `${f2(a.cpu.p50)} / ${f2(ref.cpu.p50)} ms`,
    });
  }
  const three = at(3);
  if (three) {
    const [a, ref] = [phases(three.contenders.artifact), phases(three.contenders.reference)];
    out.push({
      figure: "per call ADD+DEL / reference, 3 att",
      value: a.addDel.p50 / ref.addDel.p50,
      target: 1,
      unit: "x",
      detail: `${f2(a.addDel.p50)} / ${f2(ref.addDel.p50)} ms`,
    });
  }
  return out;
}

/** Every goal the inputs can answer, in the issue's order. */
export function goals(i: GoalInputs): Goal[] {
  const out = mainGoals(i.main);
  if (i.entry) {
    out.push({
      figure: "entry + client + socket above the exec floor (VERSION via daemon)",
      value: i.entry.entry.p50 - i.entry.floor.p50,
      target: 1.5,
      unit: "ms",
      detail: `${f2(i.entry.entry.p50)} - ${f2(i.entry.floor.p50)} ms (/bin/true)`,
    });
  }
  out.push(...(i.scale ?? []));
  if (i.ipam) {
    const p = i.ipam.perCall;
    out.push({
      figure: "cluster IPAM per ADD+DEL / host-local",
      value: p.ratio,
      target: 1.15,
      unit: "x",
      detail: `${f2(p.clusterMs)} / ${f2(p.hostLocalMs)} ms`,
    });
    const b = i.ipam.burstVsHostLocal;
    if (b) {
      out.push({
        figure: `cluster IPAM ${b.pods}-way burst makespan / host-local`,
        value: b.ratio,
        target: 1.5,
        unit: "x",
        detail: `${f2(b.clusterMs)} / ${f2(b.hostLocalMs)} ms`,
      });
    }
  }
  return out;
}

/**
 * The largest p90/p50 spread among the cells the goals compare (ADD+DEL of thick, the
 * artifact and the reference, one after another): above 1.5 the run is too noisy to judge
 * figures near their targets.
 */
export function noise(r: BenchResults): { spread: number; cell: string } {
  let worst = { spread: 1, cell: "-" };
  for (const s of r.sequential) {
    for (const c of ["thick", "artifact", "reference"] as const) {
      const p = phases(s.contenders[c]).addDel;
      const spread = p.p90 / p.p50;
      if (spread > worst.spread) worst = { spread, cell: `${c}, ${s.attachments} att` };
    }
  }
  return worst;
}

const fmt = (v: number, unit: Goal["unit"]) =>
  `${Number.isFinite(v) ? v.toFixed(unit === "x" ? 2 : 1) : "-"}${unit === "x" ? "x" : ` ${unit}`}`;

/** The table of `list`: figure, measured, target, met, operands. */
export function formatGoalTable(list: Goal[]): string {
  const rows = list.map((g) => [
    g.figure,
    fmt(g.value, g.unit),
    `<= ${fmt(g.target, g.unit)}`,
    g.value <= g.target ? "yes" : "NO",
    g.detail ?? "",
  ]);
  const head = ["figure", "measured", "target", "met", "from"];
  const widths = head.map((h, k) => Math.max(h.length, ...rows.map((r) => r[k].length)));
  const line = (r: string[]) => r.map((c, k) => c.padEnd(widths[k])).join("  ").trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** The printed section. */
export function formatGoals(i: GoalInputs): string {
  const list = goals(i);
  const n = noise(i.main);
  const la = (x: number[]) => x.map((v) => v.toFixed(2)).join(" ");
  const met = list.filter((g) => g.value <= g.target).length;
  return [
    `Issue 25 targets: ${met} of ${list.length} met (medians; machine: ${i.main.machine.cpus} ` +
    `CPUs, load average ${la(i.load.before)} before, ${la(i.load.after)} after)`,
    formatGoalTable(list),
    n.spread > 1.5
      ? `WARNING: too noisy to judge figures near their targets: p90/p50 ${f2(n.spread)} ` +
        `(${n.cell}); rerun on an idle machine`
      : `noise: largest p90/p50 spread ${f2(n.spread)} (${n.cell})`,
  ].join("\n");
}
