/**
 * The entry's own cost (part of `deno task bench`, or alone:
 * `deno run -A bench/entry_bench.ts [--rounds N]`): what a thick call pays before and after the
 * daemon's work — the exec of the node artifact's entry (bin/node-entry.c), its connect to the
 * daemon's socket, the frame there and back — measured as a CNI VERSION call, which the daemon
 * answers without touching the kernel or a file. Interleaved in one run with the exec floor
 * (`/bin/true` through the same runner) and the shim alone (`podplex-client --ready`, one
 * round trip on the socket without the entry's exec), so the rows can be subtracted. The
 * target (issue 25): entry + client + socket ≤ 1.5 ms a call. `--against DIR` adds another
 * artifact (e.g. a previous release's dist/node, built with `scripts/artifact.sh DIR`) with a
 * daemon of its own, to the same interleaved run.
 *
 * Writes `bench/results/entry-latest.json`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { snapshotBuild } from "./_build.ts";
import { buildRunner, type ExecSpec, runPods } from "./_runner.ts";
import { r2, summarize, type Summary } from "./_stats.ts";

/** Target for the VERSION round trip through the entry (ms, p50). */
export const ENTRY_TARGET_MS = 1.5;

/** What the entry benchmark measured (ms per exec). */
export interface EntryBenchResults {
  rounds: number;
  /** `/bin/true`: fork + exec + wait, the runner's floor. */
  floor: Summary;
  /** The shim alone: `podplex-client --ready` (exec, connect, one probe frame). */
  probe: Summary;
  /** The entry with CNI_COMMAND=VERSION forwarded to the daemon: what a runtime pays. */
  entry: Summary;
  /** The same through the artifact given with `against`, when one was. */
  against?: Summary;
  /** entry p50 ≤ ENTRY_TARGET_MS. */
  met: boolean;
}

async function waitSocket(path: string, child: Deno.ChildProcess): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await Deno.lstat(path).then((s) => s.isSocket, () => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGKILL");
  await child.status;
  throw new Error(`podplex serve did not listen on "${path}"`);
}

/** Runs the benchmark: `rounds` of the three execs, interleaved, after 20 of warm-up. */
export async function entryBench(
  opts: { rounds: number; outDir: string; against?: string },
): Promise<EntryBenchResults> {
  await buildRunner();
  const dir = await Deno.makeTempDir({ prefix: "ppentrybench" });
  try {
    const build = await snapshotBuild(`${dir}/podplex-root`);
    const serve = (entry: string, tag: string) =>
      new Deno.Command(entry, {
        args: [
          "serve",
          "--socket",
          `${dir}/${tag}/run/podplex.sock`,
          "--state-dir",
          `${dir}/${tag}/state`,
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
    // Each daemon has a run dir of its own: the dhcp keeper puts its socket beside serve's.
    const socket = `${dir}/podplex/run/podplex.sock`;
    const daemons = [serve(build.artifact, "podplex")];
    if (opts.against) daemons.push(serve(`${opts.against}/podplex`, "against"));
    try {
      await waitSocket(socket, daemons[0]);
      if (opts.against) await waitSocket(`${dir}/against/run/podplex.sock`, daemons[1]);
      const env = { PODPLEX_SOCKET: socket, PATH: "/usr/bin:/bin" };
      const version = { CNI_COMMAND: "VERSION" };
      const execs: ExecSpec[] = [
        { path: "/bin/true", env },
        { path: `${build.payload}/podplex-client`, args: ["--ready"], env },
        { path: build.artifact, env: { ...env, ...version } },
      ];
      const againstEnv = { ...env, ...version, PODPLEX_SOCKET: `${dir}/against/run/podplex.sock` };
      if (opts.against) execs.push({ path: `${opts.against}/podplex`, env: againstEnv });
      const once = (n: number) =>
        runPods(dir, [{ label: "entry", execs: Array.from({ length: n }, () => execs).flat() }]);
      await once(20);
      const t = await once(opts.rounds);
      const col = (i: number) =>
        t.pods[0].execs.filter((_, k) => k % execs.length === i).map((e) => e.wallMs);
      const entry = summarize(col(2));
      return {
        rounds: opts.rounds,
        floor: summarize(col(0)),
        probe: summarize(col(1)),
        entry,
        ...(opts.against ? { against: summarize(col(3)) } : {}),
        met: entry.p50 <= ENTRY_TARGET_MS,
      };
    } finally {
      for (const d of daemons) {
        try {
          d.kill("SIGTERM");
        } catch { /* already gone (waitSocket killed it) */ }
      }
      for (const d of daemons) await d.status;
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The table `deno task bench` prints. */
export function entryReport(r: EntryBenchResults): string {
  const row = (name: string, s: Summary) =>
    `  ${name.padEnd(44)} ${String(r2(s.p50)).padStart(6)} ${String(r2(s.p90)).padStart(6)}`;
  return [
    `entry cost per call (${r.rounds} each, interleaved; ms)          p50    p90`,
    row("exec floor (/bin/true)", r.floor),
    row("shim alone (podplex-client --ready)", r.probe),
    row("entry + client + socket (VERSION via daemon)", r.entry),
    ...(r.against ? [row("the same through --against's artifact", r.against)] : []),
    `  target: entry + client + socket <= ${ENTRY_TARGET_MS} ms p50: ${r.met ? "yes" : "no"}`,
  ].join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { rounds: { type: "string", default: "300" }, against: { type: "string" } },
  });
  const outDir = new URL("./results/", import.meta.url).pathname;
  const r = await entryBench({ rounds: Number(values.rounds), outDir, against: values.against });
  console.log(entryReport(r));
  await Deno.mkdir(outDir, { recursive: true });
  await Deno.writeTextFile(`${outDir}/entry-latest.json`, JSON.stringify(r, null, 2));
}
