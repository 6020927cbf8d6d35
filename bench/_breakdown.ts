/**
 * The breakdown of one podplex ADD (and DEL) with 3 attachments, from runs of the same
 * runner, interleaved per iteration:
 * - `empty`: `deno run` of a trivial bundled script with the flags `bin/podplex` uses;
 * - `version`: `deno run` of `dist/podplex.js` for CNI VERSION (runtime + bundle load), and the
 *   same through `bin/podplex` (adds the sh launcher);
 * - `add`: `bin/podplex` ADD as measured in the scenarios;
 * - `probe`: `_probe.ts` bundled (podplex's `cli/main.ts` behind timing wrappers of
 *   `Deno.dlopen`, every FFI symbol and the file APIs), run with the same flags.
 *
 * @module
 */
import { BASE_ENV, cniEnv, verifyAdded, verifyDeleted } from "./_contenders.ts";
import { type Fixture, leasesDir, networksDir, podplexConfFile, stateDir } from "./_fixture.ts";
import { BUILD_DIR, type ExecSpec, runPods } from "./_runner.ts";
import { r2, summarize, type Summary } from "./_stats.ts";

const root = new URL("..", import.meta.url).pathname;
const DENO = `${root}.tools/node_modules/.bin/deno`;
/** The flags `bin/podplex` runs the bundle with. */
export const DENO_FLAGS = [
  "run",
  "--allow-all",
  "--no-config",
  "--no-prompt",
  "--cached-only",
  "--quiet",
];
const N = 3;

/** Medians (with spread) of each part of one ADD or DEL, in ms. */
export interface PhaseBreakdown {
  parts: Record<string, Summary>;
  /** The FFI symbols that took the most time (mean ms per call of podplex and calls). */
  topFfi: { symbol: string; ms: number; calls: number }[];
  /** Libraries dlopen'ed and symbols bound per invocation. */
  bound: { library: string; symbols: number; ms: number }[];
  /** The chunks imported lazily during one call (content hashes stripped). */
  lazyModules: string[];
  /** In the run with the median main() time: the longest stretches of podplex's own JS. */
  jsGaps: { ms: number; after: string; before: string }[];
}

/** The startup path's measurements. */
export interface Breakdown {
  attachments: number;
  iterations: number;
  /** Whole-process walls: empty deno run, VERSION direct and via bin/podplex, ADD, DEL. */
  walls: Record<string, Summary>;
  maxRssKb: Record<string, Summary>;
  add: PhaseBreakdown;
  del: PhaseBreakdown;
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

/** Bundles `entry` (relative to the repo) like `deno task build` does for `kind`. */
async function bundle(entry: string, name: string, kind: "code-split" | "single"): Promise<string> {
  const split = kind === "code-split";
  const outDir = `${BUILD_DIR}/${name}`;
  await Deno.remove(outDir, { recursive: true }).catch(() => {});
  const base = entry.slice(entry.lastIndexOf("/") + 1).replace(/\.ts$/, ".js");
  const out = split ? `${outDir}/${base}` : `${outDir}.js`;
  const to = split ? ["--code-splitting", "--outdir", outDir] : ["-o", out];
  const res = await new Deno.Command(DENO, {
    args: ["bundle", "--quiet", "--platform=deno", ...to, `${root}${entry}`],
    cwd: root,
    stderr: "piped",
  }).output();
  if (!res.success) {
    throw new Error(`Cannot bundle ${entry}: ${new TextDecoder().decode(res.stderr)}`);
  }
  if (split) await timeLazyImports(outDir);
  return out;
}

interface ProbeReport {
  forkMs: number;
  marks: Record<string, number>;
  binding: Record<string, { ms: number; symbols: number }>;
  ffiCalls: Record<string, { ms: number; calls: number }>;
  fsCalls: Record<string, { ms: number; calls: number }>;
  lazyImports?: { ms: number; calls: number; modules: string[] };
  jsGaps?: { ms: number; after: string; before: string }[];
}

const sum = (xs: { ms: number }[]) => xs.reduce((a, x) => a + x.ms, 0);

/** Splits one probe run into named parts (ms); they add up to the runner's wall. */
function parts(p: ProbeReport, emptyFirstJs: number, wallMs: number): Record<string, number> {
  const m = p.marks;
  const bind = sum(Object.values(p.binding));
  const ffi = sum(Object.values(p.ffiCalls));
  const fs = (k: string) => p.fsCalls[k]?.ms ?? 0;
  const mainMs = m.done - m.loaded;
  const files = fs("state") + fs("leases") + fs("networks") + fs("other");
  const lazy = p.lazyImports?.ms ?? 0;
  return {
    "runtime start (exec to first JS of an empty script)": emptyFirstJs,
    "bundle load (parse/code cache, beyond the empty script)": m.firstJs - p.forkMs - emptyFirstJs,
    "module evaluation (static imports)": m.loaded - m.firstJs,
    "lazy chunk loading (dynamic imports in main())": lazy,
    "symbol binding (dlopen)": bind,
    "kernel work (time inside FFI calls: netlink, setns, sysctl)": ffi,
    "state write (stateDir)": fs("state"),
    "IPAM leases (dataDir, incl. flock)": fs("leases"),
    "network definitions read (networksDir)": fs("networks"),
    "other file calls": fs("other"),
    "podplex JS (main() minus the above)": mainMs - lazy - bind - ffi - files,
    "exit (after main() to reaped)": wallMs - (m.exit - p.forkMs),
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
    stamp: true,
  };
}

function phase(
  reports: ProbeReport[],
  partRows: Record<string, number>[],
  k: number,
): PhaseBreakdown {
  const keys = Object.keys(partRows[0] ?? {});
  const ffi: Record<string, { ms: number; calls: number }> = {};
  const bound: Record<string, { ms: number; symbols: number }> = {};
  for (const r of reports) {
    for (const [s, a] of Object.entries(r.ffiCalls)) {
      const t = ffi[s] ??= { ms: 0, calls: 0 };
      t.ms += a.ms / k;
      t.calls += a.calls / k;
    }
    for (const [l, a] of Object.entries(r.binding)) {
      const t = bound[l] ??= { ms: 0, symbols: 0 };
      t.ms += a.ms / k;
      t.symbols += a.symbols / k;
    }
  }
  return {
    parts: Object.fromEntries(keys.map((key) => [key, summarize(partRows.map((p) => p[key]))])),
    topFfi: Object.entries(ffi).sort((a, b) => b[1].ms - a[1].ms).slice(0, 8)
      .map(([symbol, a]) => ({ symbol, ms: r2(a.ms), calls: r2(a.calls) })),
    jsGaps:
      [...reports].sort((a, b) =>
        (a.marks.done - a.marks.loaded) - (b.marks.done - b.marks.loaded)
      )[Math.floor(reports.length / 2)]?.jsGaps?.map((g) => ({ ...g, ms: r2(g.ms) })) ?? [],
    lazyModules: (reports[0]?.lazyImports?.modules ?? []).map((m) =>
      m.replace(/-[A-Z0-9]+\.js$/, "")
    ),
    bound: Object.entries(bound)
      .map(([library, a]) => ({ library, symbols: r2(a.symbols), ms: r2(a.ms) })),
  };
}

/** Measures the startup path `k` times (pod 0 of podplex, 3 attachments). */
export async function measureBreakdown(
  f: Fixture,
  jobDir: string,
  k: number,
): Promise<Breakdown> {
  const build = f.build;
  const empty = await bundle("bench/_empty.ts", "empty", build.kind);
  const probe = await bundle("bench/_probe.ts", "probe", build.kind);
  const rep = `${jobDir}/probe.json`;
  const conf = podplexConfFile(f, N);
  const version = { ...BASE_ENV, CNI_COMMAND: "VERSION" };
  const specs: Record<string, ExecSpec> = {
    "empty deno run": {
      path: DENO,
      args: [...DENO_FLAGS, empty],
      env: { ...BASE_ENV, PP_PROBE_REPORT: rep },
      stamp: true,
    },
    "VERSION, deno run of dist/ (no launcher)": {
      path: DENO,
      args: [...DENO_FLAGS, build.entry],
      env: version,
      stdin: conf,
    },
    "VERSION, bin/podplex": { path: f.build.bin, env: version, stdin: conf },
    "ADD, bin/podplex": { path: f.build.bin, env: cniEnv(f, "podplex", 0, "ADD"), stdin: conf },
    "DEL, bin/podplex": { path: f.build.bin, env: cniEnv(f, "podplex", 0, "DEL"), stdin: conf },
    "ADD, probe": probeExec(f, probe, "ADD", rep),
    "DEL, probe": probeExec(f, probe, "DEL", rep),
  };
  const walls: Record<string, number[]> = {};
  const rss: Record<string, number[]> = {};
  const reports: Record<"ADD" | "DEL", ProbeReport[]> = { ADD: [], DEL: [] };
  const rows: Record<"ADD" | "DEL", Record<string, number>[]> = { ADD: [], DEL: [] };
  const raw: Record<"ADD" | "DEL", { r: ProbeReport; wall: number }[]> = { ADD: [], DEL: [] };
  const emptyFirstJs: number[] = [];
  for (let i = 0; i < k + 1; i++) {
    for (const [name, spec] of Object.entries(specs)) {
      const t = await runPods(jobDir, [{ label: name, execs: [spec] }]);
      if (name.startsWith("ADD")) await verifyAdded(f, "podplex", 0, N);
      if (name.startsWith("DEL")) await verifyDeleted(f, "podplex", 0);
      if (i === 0) continue; // the first iteration warms the probe's and empty's code cache
      (walls[name] ??= []).push(t.pods[0].wallMs);
      (rss[name] ??= []).push(t.pods[0].execs[0].maxRssKb);
      if (name === "empty deno run") {
        const r = JSON.parse(await Deno.readTextFile(rep));
        emptyFirstJs.push(r.marks.firstJs - r.forkMs);
      }
      if (name.endsWith("probe")) {
        const cmd = name.startsWith("ADD") ? "ADD" : "DEL";
        const r = JSON.parse(await Deno.readTextFile(rep)) as ProbeReport;
        raw[cmd].push({ r, wall: t.pods[0].wallMs });
      }
    }
  }
  // Runtime start is the empty script's median: pairing single runs would add their noise.
  const start = summarize(emptyFirstJs).p50;
  for (const cmd of ["ADD", "DEL"] as const) {
    for (const { r, wall } of raw[cmd]) {
      reports[cmd].push(r);
      rows[cmd].push(parts(r, start, wall));
    }
  }
  const sums = (o: Record<string, number[]>) =>
    Object.fromEntries(Object.entries(o).map(([key, xs]) => [key, summarize(xs)]));
  return {
    attachments: N,
    iterations: k,
    walls: sums(walls),
    maxRssKb: sums(rss),
    add: phase(reports.ADD, rows.ADD, k),
    del: phase(reports.DEL, rows.DEL, k),
  };
}
