/**
 * The C runner (`bench/runner.c`): compiled at bench time with `cc -O2` into the gitignored
 * `bench/.build/`, fed a job file, its output parsed. Both podplex and the reference plugins go
 * through it, so both are measured by the same fork/exec/wait4 code.
 *
 * @module
 */

const here = new URL(".", import.meta.url).pathname;
/** Where build products of the bench live (gitignored). */
export const BUILD_DIR = `${here}.build`;
const RUNNER = `${BUILD_DIR}/runner`;

/** One exec of a pod: what a runtime would exec, with its env and stdin. */
export interface ExecSpec {
  path: string;
  args?: string[];
  env: Record<string, string>;
  /** A file whose bytes are the exec's stdin. */
  stdin?: string;
  /** A file the exec's stderr goes to (default: the runner's stderr). */
  stderr?: string;
  /** Pass PP_FORK_REALTIME_US (CLOCK_REALTIME µs at fork) and report it back. */
  stamp?: boolean;
}

/** One pod: its execs run one after another. */
export interface PodJob {
  label: string;
  execs: ExecSpec[];
}

/** One exec's measurement. */
export interface ExecTiming {
  exit: number;
  startMs: number;
  wallMs: number;
  maxRssKb: number;
  /** The fork on CLOCK_REALTIME in epoch ms, for a stamped exec (NaN otherwise). */
  forkEpochMs: number;
  /** User + system CPU of the exec and its waited children (ms). */
  cpuMs: number;
  /** The system (kernel) part of `cpuMs`. */
  sysMs: number;
}

/** One pod's measurement: from its first fork to its last wait. */
export interface PodTiming {
  label: string;
  startMs: number;
  wallMs: number;
  ok: boolean;
  execs: ExecTiming[];
}

/** A runner call's measurements. */
export interface RunTiming {
  pods: PodTiming[];
  /** From the first fork to the last wait of the whole call (a burst's makespan). */
  totalMs: number;
}

/** Compiles `bench/runner.c` (quietly, every run: it takes ~100 ms and cannot go stale). */
export async function buildRunner(): Promise<string> {
  await Deno.mkdir(BUILD_DIR, { recursive: true });
  const out = await new Deno.Command("cc", {
    args: ["-O2", "-Wall", "-o", RUNNER, `${here}runner.c`],
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`Cannot compile bench/runner.c: ${new TextDecoder().decode(out.stderr)}`);
  }
  return RUNNER;
}

function jobText(pods: PodJob[]): string {
  const lines: string[] = [];
  for (const pod of pods) {
    lines.push(`P ${pod.label}`);
    for (const e of pod.execs) {
      lines.push(`X ${[e.path, ...(e.args ?? [])].join(" ")}`);
      for (const [k, v] of Object.entries(e.env)) lines.push(`E ${k}=${v}`);
      if (e.stdin) lines.push(`I ${e.stdin}`);
      if (e.stderr) lines.push(`O ${e.stderr}`);
      if (e.stamp) lines.push("S");
    }
  }
  return lines.join("\n") + "\n";
}

function parse(pods: PodJob[], text: string): RunTiming {
  const timings: PodTiming[] = pods.map((p) => ({
    label: p.label,
    startMs: 0,
    wallMs: 0,
    ok: false,
    execs: [],
  }));
  let totalMs = 0;
  for (const line of text.trim().split("\n")) {
    const f = line.split(" ");
    if (f[0] === "R") {
      timings[+f[1]].execs[+f[2]] = {
        exit: +f[3],
        startMs: +f[4] / 1000,
        wallMs: +f[5] / 1000,
        maxRssKb: +f[6],
        forkEpochMs: +f[7] ? +f[7] / 1000 : NaN,
        cpuMs: +f[8] / 1000,
        sysMs: +f[9] / 1000,
      };
    } else if (f[0] === "P") {
      Object.assign(timings[+f[1]], {
        startMs: +f[2] / 1000,
        wallMs: +f[3] / 1000,
        ok: f[4] === "1",
      });
    } else if (f[0] === "T") totalMs = +f[1] / 1000;
  }
  return { pods: timings, totalMs };
}

/**
 * Runs `pods` through the C runner, one after another or all at once.
 *
 * @throws {Error} when any exec fails (its stdout is in the message): a contender that errors
 *   must stop the bench, never be averaged in
 */
export async function runPods(
  jobDir: string,
  pods: PodJob[],
  parallel = false,
): Promise<RunTiming> {
  const jobFile = `${jobDir}/job.txt`;
  await Deno.writeTextFile(jobFile, jobText(pods));
  const out = await new Deno.Command(RUNNER, {
    args: parallel ? ["-p", jobFile] : [jobFile],
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
  }).output();
  const timing = parse(pods, new TextDecoder().decode(out.stdout));
  if (!out.success || timing.pods.some((p) => !p.ok)) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`A contender failed (${pods.map((p) => p.label).join(", ")}): ${err}`);
  }
  return timing;
}
