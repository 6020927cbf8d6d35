/**
 * The breakdown of one call from podplex's own marks: `bin/podplex` run with
 * `PODPLEX_TRACE=1` writes `PODPLEX_TRACE {"marks":[[name, epochMs], ...]}` on stderr right
 * before it exits (conf/trace.ts). The runner passes and reports its fork time
 * (CLOCK_REALTIME), so the marks are put between the fork and the reaping, and every phase
 * between two consecutive marks gets a name.
 *
 * @module
 */
import type { ExecSpec, ExecTiming } from "./_runner.ts";
import { summarize, type Summary } from "./_stats.ts";

const PREFIX = "PODPLEX_TRACE ";

/** One traced run: the marks in order, placed on the runner's timeline. */
export interface TraceRun {
  /** [name, ms since the fork]. */
  marks: [string, number][];
  /** The runner's wall (fork to reaped), in ms. */
  wallMs: number;
}

/** Medians and spread of each phase of one call, in order. */
export interface TraceBreakdown {
  runs: number;
  /** Phase key ("a → b") to its summary (ms), in the order of the calls' marks. */
  phases: Record<string, Summary>;
  /** The runner's wall of the traced runs. */
  wall: Summary;
}

/** `spec` with tracing on, its stderr going to `stderrFile` and its fork time stamped. */
export function traced(spec: ExecSpec, stderrFile: string): ExecSpec {
  return { ...spec, env: { ...spec.env, PODPLEX_TRACE: "1" }, stderr: stderrFile, stamp: true };
}

/**
 * Reads the trace line of one run from its stderr.
 *
 * @throws {Error} when there is no trace line or the runner gave no fork time
 */
export function parseTrace(stderr: string, exec: ExecTiming): TraceRun {
  const line = stderr.split("\n").find((l) => l.startsWith(PREFIX));
  if (!line) throw new Error(`No "${PREFIX.trim()}" line on stderr: ${stderr.slice(0, 300)}`);
  if (!Number.isFinite(exec.forkEpochMs)) throw new Error("The runner reported no fork time");
  const { marks } = JSON.parse(line.slice(PREFIX.length)) as { marks: [string, number][] };
  return {
    marks: marks.map(([name, t]) => [name, t - exec.forkEpochMs]),
    wallMs: exec.wallMs,
  };
}

/** The phases of one run (ms): fork → first mark, between consecutive marks, last → reaped. */
export function phasesOf(run: TraceRun): [string, number][] {
  const out: [string, number][] = [];
  let prev: [string, number] = ["exec", 0];
  for (const m of run.marks) {
    out.push([`${prev[0]} → ${m[0]}`, m[1] - prev[1]]);
    prev = m;
  }
  out.push([`${prev[0]} → reaped`, run.wallMs - prev[1]]);
  return out;
}

/** Summarizes the phases of `runs` (a phase missing from some runs is summarized over the rest). */
export function summarizeTraces(runs: TraceRun[]): TraceBreakdown {
  const samples = new Map<string, number[]>();
  for (const run of runs) {
    for (const [key, ms] of phasesOf(run)) {
      const xs = samples.get(key) ?? [];
      xs.push(ms);
      samples.set(key, xs);
    }
  }
  return {
    runs: runs.length,
    phases: Object.fromEntries([...samples].map(([k, xs]) => [k, summarize(xs)])),
    wall: summarize(runs.map((r) => r.wallMs)),
  };
}

const ATT = /^att:(\d+):end$/;

/** What happens in the phase that ends at mark `to` (after `from`) of a `cmd` call. */
export function describePhase(cmd: string, from: string, to: string): string {
  if (from === "exec" && to === "entry") {
    return cmd === "empty"
      ? "deno start to the script's first statement"
      : "sh launcher, deno start, bundle load (to the first module evaluated)";
  }
  if (to === "reaped") return "process teardown, to the runner's wait4";
  const att = ATT.exec(to);
  if (att) {
    const first = from === "plan" || from === "group-del" ? "; the first loads their chunks" : "";
    if (cmd === "DEL") return `delegate DEL #${att[1]} (reverse order): IPAM release${first}`;
    return `attachment ${att[1]}: bridge + host-local ADD${first}`;
  }
  const known: Record<string, string> = {
    main: "evaluation of the static imports",
    stdin: "stdin read",
    dispatch: "env checks, conf parse, version gate",
    resolved: "meta-plugin lookup (lazy chunk import)",
    conf: "podplex conf validation",
    plan: "annotations, network resolution, networksDir reads",
    policy: "default routes; the network policy step (the pod's nft table, when a policy applies)",
    state: "network-status, state write (fsync)",
    "policy-peers": "peers' policy tables updated (when a policy applies)",
    result: "merge, convert and print the result",
    exit: "return to main(), trace flush",
    "state-loaded": "CNI_ARGS, state file read",
    "group-del": "one RTM_DELLINK by link group (RCU grace period), FFI binding",
    "state-removed": "state file removal",
  };
  return known[to] ?? "";
}
