/**
 * The "thick as deployed" part of the report: the thick contender (the host's shim, the
 * daemon in its own mount namespace) against the reference plugins measured in the same
 * run, on issue 12's targets, with the daemon's CPU and memory, and where a call's time goes
 * (the daemon's own time per call, from its log, against what the runtime waited).
 *
 * @module
 */
import type { BenchResults } from "./_report.ts";
import { phases } from "./_report.ts";
import { pairSum, summarize } from "./_stats.ts";

/** The thick daemon's own time (ms) of the sequential calls of one attachment count. */
export interface ThickServed {
  attachments: number;
  add: number[];
  del: number[];
}

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "-");
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "-");
const mib = (kb: number) => (kb / 1024).toFixed(1);

/** Issue 12's targets: ADD+DEL ratio to the reference by attachment count. */
const TARGETS: Record<number, number> = { 1: 0.8, 3: 0.35 };

/** The section's lines. */
export function thickSection(r: BenchResults): string {
  const out = [
    "Thick as deployed (daemon in its own mount namespace, host shim), issue 12 targets",
  ];
  for (const s of r.sequential) {
    const [t, ref] = [phases(s.contenders.thick), phases(s.contenders.reference)];
    const ratio = t.addDel.p50 / ref.addDel.p50;
    const goal = TARGETS[s.attachments];
    out.push(
      `${s.attachments} att: ADD+DEL ${f1(t.addDel.p50)} vs reference ${f1(ref.addDel.p50)} ms, ` +
        `ratio ${f2(ratio)}` +
        (goal ? ` (target <= ${goal}: ${ratio <= goal ? "yes" : "NO"})` : "") +
        `; ADD ${f2(t.add.p50 / ref.add.p50)}, DEL ${f2(t.del.p50 / ref.del.p50)}`,
    );
  }
  const b3 = r.burst.find((b) => b.attachments === 3);
  if (b3) {
    const span = (c: "thick" | "reference") => {
      const x = b3.contenders[c];
      return summarize(pairSum(x.addMakespan, x.delMakespan)).p50;
    };
    const ratio = span("thick") / span("reference");
    out.push(
      `${r.options.pods}-pod burst, 3 att: ADD all + DEL all ${f1(span("thick"))} vs ` +
        `${f1(span("reference"))} ms, ratio ${f2(ratio)} (target <= 0.5: ${
          ratio <= 0.5 ? "yes" : "NO"
        })`,
    );
  }
  for (const s of r.sequential) {
    const [t, ref] = [phases(s.contenders.thick), phases(s.contenders.reference)];
    const shim = t.cpu.p50 - t.daemonCpu.p50;
    const ratio = t.daemonCpu.p50 / ref.cpu.p50;
    out.push(
      `${s.attachments} att: CPU per ADD+DEL: reference processes ${f1(ref.cpu.p50)} ms; thick ` +
        `daemon ${f1(t.daemonCpu.p50)} ms, ratio ${f2(ratio)}` +
        (s.attachments === 3 ? ` (target <= 1.0: ${ratio <= 1 ? "yes" : "NO"})` : "") +
        `; + shim and launcher ${f1(shim)} ms`,
    );
  }
  const d = r.daemons;
  if (d) {
    out.push(
      `daemon memory at the end: thick ${mib(d.thick.rss)} MiB resident (${mib(d.thick.anon)} ` +
        `anonymous; the rest the runtime binary's file pages), serve ${mib(d.serve.rss)} MiB ` +
        `(${mib(d.serve.anon)} anonymous)`,
    );
  }
  for (const s of r.thickServed ?? []) {
    const seq = r.sequential.find((x) => x.attachments === s.attachments);
    if (!seq) continue;
    const t = phases(seq.contenders.thick);
    const [a, dl] = [summarize(s.add).p50, summarize(s.del).p50];
    out.push(
      `${s.attachments} att, where the time goes (p50): ADD ${f1(t.add.p50)} ms waited = ` +
        `${f1(a)} in the daemon + ${f1(t.add.p50 - a)} launcher, shim and socket; DEL ` +
        `${f1(t.del.p50)} = ${f1(dl)} + ${f1(t.del.p50 - dl)}`,
    );
  }
  return out.join("\n");
}
