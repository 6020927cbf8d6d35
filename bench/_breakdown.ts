/**
 * The breakdown of one podplex ADD (and DEL) with 3 attachments, from runs of the same
 * runner, interleaved per iteration:
 * - `empty`: `deno run` of a trivial bundled script with the flags `bin/podplex` uses;
 * - `version`: `deno run` of the build for CNI VERSION (runtime + bundle load), and the same
 *   through `bin/podplex` (adds the sh launcher);
 * - `add` / `del`: `bin/podplex` as measured in the scenarios, without and with
 *   `PODPLEX_TRACE=1` (podplex's own marks name the phases: see `_trace.ts`);
 * - `probe`: `_probe.ts` bundled (podplex's `cli/main.ts` behind timing wrappers of the C
 *   calls, the binding, the file APIs and the lazy imports), run with the same flags, for
 *   what the marks cannot split out of a phase.
 *
 * @module
 */
import { DENO_FLAGS } from "./_build.ts";
import { BASE_ENV, cniEnv, verifyAdded, verifyDeleted } from "./_contenders.ts";
import { type Fixture, leasesDir, networksDir, podplexConfFile, stateDir } from "./_fixture.ts";
import { BUILD_DIR, type ExecSpec, runPods } from "./_runner.ts";
import { r2, summarize, type Summary } from "./_stats.ts";
import {
  parseTrace,
  summarizeTraces,
  type TraceBreakdown,
  traced,
  type TraceRun,
} from "./_trace.ts";

const root = new URL("..", import.meta.url).pathname;
const DENO = `${root}.tools/node_modules/.bin/deno`;
const N = 3;

/** What the probe saw in one ADD or DEL: medians over the runs, in ms. */
export interface ProbeBreakdown {
  parts: Record<string, Summary>;
  /** The C functions that took the most time (mean ms and calls per run). */
  topFfi: { symbol: string; ms: number; calls: number }[];
  /** C calls per run. */
  ffiCalls: number;
  /** Symbols bound per run. */
  symbols: number;
  /** The chunks imported lazily during one call (content hashes stripped). */
  lazyModules: string[];
}

/** The startup path's measurements. */
export interface Breakdown {
  attachments: number;
  iterations: number;
  /** Whole-process walls: empty deno run, VERSION direct and via bin/podplex, ADD, DEL. */
  walls: Record<string, Summary>;
  maxRssKb: Record<string, Summary>;
  /** Phases from the trace marks of bin/podplex (and of the empty script). */
  trace: { empty: TraceBreakdown; add: TraceBreakdown; del: TraceBreakdown };
  probe: { add: ProbeBreakdown; del: ProbeBreakdown };
}

/** Rewrites a code-split bundle's `import("./x.js")` into the probe's timed `__ppImport`. */
async function timeLazyImports(dir: string): Promise<void> {
  for (const e of Deno.readDirSync(dir)) {
    const path = `${dir}/${e.name}`;
    const js = await Deno.readTextFile(path);
    const timed = js.replace(/\bimport\("\.\/([^"]+)"\)/g, 'globalThis.__ppImport("$1")');
    if (timed !== js) await Deno.writeTextFile(path, timed);
  }
}

/** Bundles `entry` (relative to the repo) like `scripts/artifact.sh` does. */
async function bundle(entry: string, name: string, kind: "code-split"): Promise<string> {
  const split = kind === "code-split";
  const outDir = `${BUILD_DIR}/${name}`;
  await Deno.remove(outDir, { recursive: true }).catch(() => {});
  const base = entry.slice(entry.lastIndexOf("/") + 1).replace(/\.ts$/, ".js");
  const out = split ? `${outDir}/${base}` : `${outDir}.js`;
  const to = split ? ["--code-splitting", "--outdir", outDir] : ["-o", out];
  const res = await new Deno.Command(DENO, {
    args: ["bundle", "--quiet", "--platform=browser", ...to, `${root}${entry}`],
    cwd: root,
    stderr: "piped",
  }).output();
  if (!res.success) {
    throw new Error(`Cannot bundle ${entry}: ${new TextDecoder().decode(res.stderr)}`);
  }
  if (split) await timeLazyImports(outDir);
  return out;
}

interface Acc {
  ms: number;
  calls: number;
}

interface ProbeReport {
  marks: Record<string, number>;
  binding: Record<string, Acc>;
  ffiCalls: Record<string, Acc>;
  fsCalls: Record<string, Acc>;
  lazyImports?: Acc & { modules: string[] };
}

const sum = (xs: Acc[], k: "ms" | "calls" = "ms") => xs.reduce((a, x) => a + x[k], 0);

/** The probe's parts of one run (ms): the parts overlap the trace's phases, not each other. */
function probeParts(p: ProbeReport): Record<string, number> {
  const fs = (k: string) => p.fsCalls[k]?.ms ?? 0;
  return {
    "main() (the probe's own wall of podplex's code)": p.marks.done - p.marks.loaded,
    "inside C calls (netlink, setns, sysctl, libc)": sum(Object.values(p.ffiCalls)),
    "symbol binding (dlopen of addresses + UnsafeFnPointer)": sum(Object.values(p.binding)),
    "lazy chunk imports": p.lazyImports?.ms ?? 0,
    "state files (stateDir)": fs("state"),
    "IPAM leases (dataDir, incl. flock)": fs("leases"),
    "network definitions (networksDir)": fs("networks"),
    "other file calls": fs("other"),
  };
}

function probeBreakdown(reports: ProbeReport[]): ProbeBreakdown {
  const k = reports.length || 1;
  const rows = reports.map(probeParts);
  const ffi: Record<string, Acc> = {};
  for (const r of reports) {
    for (const [s, a] of Object.entries(r.ffiCalls)) {
      const t = ffi[s] ??= { ms: 0, calls: 0 };
      t.ms += a.ms / k;
      t.calls += a.calls / k;
    }
  }
  const dlopened = (r: ProbeReport) =>
    Object.entries(r.binding).filter(([l]) => l !== "UnsafeFnPointer").map(([, a]) => a);
  return {
    parts: Object.fromEntries(
      Object.keys(rows[0] ?? {}).map((key) => [key, summarize(rows.map((p) => p[key]))]),
    ),
    topFfi: Object.entries(ffi).sort((a, b) => b[1].ms - a[1].ms).slice(0, 6)
      .map(([symbol, a]) => ({ symbol, ms: r2(a.ms), calls: r2(a.calls) })),
    ffiCalls: r2(sum(Object.values(ffi), "calls")),
    symbols: r2(reports.reduce((a, r) => a + sum(dlopened(r), "calls"), 0) / k),
    lazyModules: (reports[0]?.lazyImports?.modules ?? []).map((m) =>
      m.replace(/-[A-Z0-9]+\.js$/, "")
    ),
  };
}

function probeExec(f: Fixture, probe: string, cmd: "ADD" | "DEL", report: string): ExecSpec {
  return {
    path: DENO,
    args: [...DENO_FLAGS, probe],
    env: {
      ...cniEnv(f, "podplex", 0, cmd),
      PODPLEX_ARGV0: "podplex",
      PP_PROBE_REPORT: report,
      PP_PROBE_STATE: stateDir(f),
      PP_PROBE_LEASES: leasesDir(f, "podplex"),
      PP_PROBE_NETWORKS: networksDir(f),
    },
    stdin: podplexConfFile(f, N),
  };
}

/** The execs of one iteration, by name; traced ones write their stderr to `errFile`. */
function execSpecs(f: Fixture, empty: string, probe: string, rep: string, errFile: string) {
  const conf = podplexConfFile(f, N);
  const version = { ...BASE_ENV, CNI_COMMAND: "VERSION" };
  const bin = (cmd: "ADD" | "DEL"): ExecSpec => ({
    path: f.build.bin,
    env: cniEnv(f, "podplex", 0, cmd),
    stdin: conf,
  });
  const specs: Record<string, ExecSpec> = {
    "empty deno run": traced({ path: DENO, args: [...DENO_FLAGS, empty], env: BASE_ENV }, errFile),
    "VERSION, deno run of dist/ (no launcher)": {
      path: DENO,
      args: [...DENO_FLAGS, f.build.entry],
      env: version,
      stdin: conf,
    },
    "VERSION, bin/podplex": { path: f.build.bin, env: version, stdin: conf },
    "ADD, bin/podplex": bin("ADD"),
    "DEL, bin/podplex": bin("DEL"),
    "ADD, bin/podplex PODPLEX_TRACE=1": traced(bin("ADD"), errFile),
    "DEL, bin/podplex PODPLEX_TRACE=1": traced(bin("DEL"), errFile),
    "ADD, probe": probeExec(f, probe, "ADD", rep),
    "DEL, probe": probeExec(f, probe, "DEL", rep),
  };
  return specs;
}

/** Measures the startup path `k` times (pod 0 of podplex, 3 attachments). */
export async function measureBreakdown(
  f: Fixture,
  jobDir: string,
  k: number,
): Promise<Breakdown> {
  const empty = await bundle("bench/_empty.ts", "empty", f.build.kind);
  const probe = await bundle("bench/_probe.ts", "probe", f.build.kind);
  const rep = `${jobDir}/probe.json`;
  const errFile = `${jobDir}/trace.err`;
  const specs = execSpecs(f, empty, probe, rep, errFile);
  const walls: Record<string, number[]> = {};
  const rss: Record<string, number[]> = {};
  const traces: Record<"empty" | "ADD" | "DEL", TraceRun[]> = { empty: [], ADD: [], DEL: [] };
  const probes: Record<"ADD" | "DEL", ProbeReport[]> = { ADD: [], DEL: [] };
  for (let i = 0; i < k + 1; i++) {
    for (const [name, spec] of Object.entries(specs)) {
      const t = await runPods(jobDir, [{ label: name, execs: [spec] }]);
      if (name.startsWith("ADD")) await verifyAdded(f, "podplex", 0, N);
      if (name.startsWith("DEL")) await verifyDeleted(f, "podplex", 0);
      if (i === 0) continue; // the first iteration warms the probe's and empty's code cache
      const exec = t.pods[0].execs[0];
      (walls[name] ??= []).push(t.pods[0].wallMs);
      (rss[name] ??= []).push(exec.maxRssKb);
      const cmd = name.startsWith("ADD") ? "ADD" : name.startsWith("DEL") ? "DEL" : "empty";
      if (spec.env.PODPLEX_TRACE) {
        traces[cmd].push(parseTrace(await Deno.readTextFile(errFile), exec));
      }
      if (name.endsWith("probe") && cmd !== "empty") {
        probes[cmd].push(JSON.parse(await Deno.readTextFile(rep)) as ProbeReport);
      }
    }
  }
  const sums = (o: Record<string, number[]>) =>
    Object.fromEntries(Object.entries(o).map(([key, xs]) => [key, summarize(xs)]));
  return {
    attachments: N,
    iterations: k,
    walls: sums(walls),
    maxRssKb: sums(rss),
    trace: {
      empty: summarizeTraces(traces.empty),
      add: summarizeTraces(traces.ADD),
      del: summarizeTraces(traces.DEL),
    },
    probe: { add: probeBreakdown(probes.ADD), del: probeBreakdown(probes.DEL) },
  };
}
