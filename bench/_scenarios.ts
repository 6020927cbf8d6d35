/**
 * The measured scenarios. Contenders are interleaved (their order rotates every pod and every
 * round) so that drift on the machine hits all of them alike; every ADD is checked before the
 * DELs and every DEL after, outside the timed region.
 *
 * @module
 */
import { podJob, verifyAdded, verifyDeleted, verifyReleased } from "./_contenders.ts";
import {
  type ContenderId,
  CONTENDERS,
  daemonPid,
  type Fixture,
  MAX_ATTACHMENTS,
} from "./_fixture.ts";
import { type PodJob, type PodTiming, runPods, type RunTiming } from "./_runner.ts";
import { cpuMs } from "./_daemons.ts";

/** Per-pod samples of one contender, in milliseconds (and KiB for memory). */
export interface PodSamples {
  add: number[];
  del: number[];
  /** Peak RSS of the largest process of each ADD / DEL (wait4's ru_maxrss). */
  addRssKb: number[];
  delRssKb: number[];
  /**
   * CPU of each ADD / DEL (ms): its processes' user + system time, plus for a contender with
   * a daemon (serve, thick) the daemon's CPU over the call (a burst: its share of the
   * burst's); `*DaemonCpuMs` is that daemon part alone.
   */
  addCpuMs: number[];
  delCpuMs: number[];
  addDaemonCpuMs: number[];
  delDaemonCpuMs: number[];
}

/** A burst's samples of one contender: makespans of the whole burst, and per-pod latencies. */
export interface BurstSamples extends PodSamples {
  addMakespan: number[];
  delMakespan: number[];
}

/** Results of one attachment count. */
export interface ScenarioResult<T> {
  attachments: number;
  contenders: Record<ContenderId, T>;
}

/** Contenders in an order rotated by `k`. */
export function rotate(k: number): ContenderId[] {
  const s = k % CONTENDERS.length;
  return [...CONTENDERS.slice(s), ...CONTENDERS.slice(0, s)];
}

function emptyPodSamples(): PodSamples {
  return {
    add: [],
    del: [],
    addRssKb: [],
    delRssKb: [],
    addCpuMs: [],
    delCpuMs: [],
    addDaemonCpuMs: [],
    delDaemonCpuMs: [],
  };
}

function record(s: PodSamples, phase: "add" | "del", pod: PodTiming, daemonMs = 0): void {
  s[phase].push(pod.wallMs);
  const rss = Math.max(...pod.execs.map((e) => e.maxRssKb));
  (phase === "add" ? s.addRssKb : s.delRssKb).push(rss);
  const cpu = pod.execs.reduce((a, e) => a + e.cpuMs, 0) + daemonMs;
  (phase === "add" ? s.addCpuMs : s.delCpuMs).push(cpu);
  (phase === "add" ? s.addDaemonCpuMs : s.delDaemonCpuMs).push(daemonMs);
}

/** Runs `jobs` and measures the CPU the contender's daemon spent meanwhile (0: none). */
async function runMeasured(
  f: Fixture,
  c: ContenderId,
  jobDir: string,
  jobs: PodJob[],
  parallel = false,
): Promise<{ t: RunTiming; daemonMs: number }> {
  const pid = daemonPid(f, c);
  const before = pid ? cpuMs(pid) : 0;
  const t = await runPods(jobDir, jobs, parallel);
  return { t, daemonMs: pid ? cpuMs(pid) - before : 0 };
}

async function verifyAll(f: Fixture, c: ContenderId, n: number, added: boolean): Promise<void> {
  for (let j = 0; j < f.pods; j++) {
    if (added) await verifyAdded(f, c, j, n);
    else await verifyDeleted(f, c, j);
  }
  if (!added) await verifyReleased(f, c);
}

/**
 * Warms every contender up (deno's first run of a bundle writes the code cache; the reference
 * bridge and podplex create their bridges) with two checked ADD/DEL cycles of pod 0.
 */
export async function warmUp(f: Fixture, jobDir: string): Promise<void> {
  for (let k = 0; k < 2; k++) {
    for (const c of CONTENDERS) {
      await runPods(jobDir, [await podJob(f, c, 0, MAX_ATTACHMENTS, "ADD")]);
      await verifyAdded(f, c, 0, MAX_ATTACHMENTS);
      await runPods(jobDir, [await podJob(f, c, 0, MAX_ATTACHMENTS, "DEL")]);
      await verifyDeleted(f, c, 0);
      await verifyReleased(f, c);
    }
  }
}

/**
 * Pods one after another: per round, ADD pod 0..P-1 (each pod by every contender in turn),
 * check, then DEL them all the same way, check.
 */
export async function sequential(
  f: Fixture,
  jobDir: string,
  n: number,
  rounds: number,
  progress: (s: string) => void,
): Promise<ScenarioResult<PodSamples>> {
  const out = Object.fromEntries(CONTENDERS.map((c) => [c, emptyPodSamples()])) as Record<
    ContenderId,
    PodSamples
  >;
  for (let r = 0; r < rounds; r++) {
    for (const phase of ["add", "del"] as const) {
      for (let j = 0; j < f.pods; j++) {
        for (const c of rotate(j + r)) {
          const cmd = phase === "add" ? "ADD" : "DEL";
          const { t, daemonMs } = await runMeasured(f, c, jobDir, [await podJob(f, c, j, n, cmd)]);
          record(out[c], phase, t.pods[0], daemonMs);
        }
      }
      for (const c of CONTENDERS) await verifyAll(f, c, n, phase === "add");
    }
    progress(`sequential n=${n} round ${r + 1}/${rounds}`);
  }
  return { attachments: n, contenders: out };
}

/** Kubelet bursts: per round and contender, all P pods ADDed at once, checked, DELed at once. */
export async function burst(
  f: Fixture,
  jobDir: string,
  n: number,
  rounds: number,
  progress: (s: string) => void,
): Promise<ScenarioResult<BurstSamples>> {
  const out = Object.fromEntries(
    CONTENDERS.map((c): [ContenderId, BurstSamples] => [
      c,
      { ...emptyPodSamples(), addMakespan: [], delMakespan: [] },
    ]),
  ) as Record<ContenderId, BurstSamples>;
  for (let r = 0; r < rounds; r++) {
    for (const phase of ["add", "del"] as const) {
      for (const c of rotate(r)) {
        const cmd = phase === "add" ? "ADD" : "DEL";
        const jobs = [];
        for (let j = 0; j < f.pods; j++) jobs.push(await podJob(f, c, j, n, cmd));
        const { t, daemonMs } = await runMeasured(f, c, jobDir, jobs, true);
        (phase === "add" ? out[c].addMakespan : out[c].delMakespan).push(t.totalMs);
        for (const pod of t.pods) record(out[c], phase, pod, daemonMs / t.pods.length);
        await verifyAll(f, c, n, phase === "add");
      }
    }
    progress(`burst n=${n} round ${r + 1}/${rounds}`);
  }
  return { attachments: n, contenders: out };
}
