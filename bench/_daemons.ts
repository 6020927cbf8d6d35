/**
 * The daemons of the bench's daemon-backed contenders, and what is read of them: the
 * `thick` contender's `podplex serve --thick`-style daemon in a container of its own (the
 * DaemonSet's mounts, as tests/thick_container.sh makes them: its own mount namespace, the
 * host's netns and pids), and for it and `serve`'s daemon their CPU time (every thread's, to
 * the nanosecond, from /proc/<pid>/task/<tid>/schedstat) and their resident memory.
 *
 * @module
 */
import type { Fixture } from "./_fixture.ts";
import { REFERENCE_DIR } from "./_contenders.ts";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** CPU time of every thread of `pid` so far (ms). */
export function cpuMs(pid: number): number {
  let ns = 0;
  try {
    for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/schedstat`).split(" ")[0]);
      } catch { /* the thread ended */ }
    }
  } catch {
    return NaN;
  }
  return ns / 1e6;
}

/** Resident memory of `pid` (KiB): all of it, and the anonymous part. */
export function rssKb(pid: number): { rss: number; anon: number } {
  try {
    const s = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB$`, "m").exec(s)?.[1] ?? NaN);
    return { rss: kb("VmRSS"), anon: kb("RssAnon") };
  } catch {
    return { rss: NaN, anon: NaN };
  }
}

/** Where the thick contender's files live on the "host" (all mounted into its container). */
export function thickDirs(f: Fixture): { base: string; leases: string; socket: string } {
  return {
    base: `${f.dir}/thick`,
    leases: `${f.dir}/leases-thick`,
    socket: `${f.dir}/thick/run/podplex.sock`,
  };
}

/**
 * Starts the thick contender's daemon: the installed artifact (the `artifact` contender's,
 * which the host's shim belongs to) copied in as the image's /podplex, its dirs and the
 * reference plugins' dir bind-mounted at the same paths, this process as the host.
 */
export async function startThickDaemon(
  f: Fixture,
  artifactDir: string,
): Promise<{ child: Deno.ChildProcess; log: () => string }> {
  const d = thickDirs(f);
  const hostPaths = [d.base, d.leases, REFERENCE_DIR];
  for (const p of [d.base, d.leases, `${d.base}/run`]) await Deno.mkdir(p, { recursive: true });
  const container = `${f.dir}/thick-container`;
  await Deno.mkdir(container, { recursive: true });
  const child = new Deno.Command("unshare", {
    args: [
      "-m",
      "--propagation",
      "slave",
      "sh",
      `${root}/tests/thick_container.sh`,
      "/podplex/podplex",
      "serve",
      "--socket",
      d.socket,
      ...[...hostPaths, "/run/netns"].flatMap((p) => ["--host-path", p]),
      "--host-root",
      `/proc/${Deno.pid}/root`,
      "--host-mount-ns",
      `/proc/${Deno.pid}/ns/mnt`,
    ],
    env: { ROOT: container, ARTIFACT: artifactDir, HOST_PATHS: hostPaths.join(":") },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // One line per call ("ADD <id> eth0: exit 0 in 4.2 ms"): the daemon's side of each call.
  let text = "";
  const dec = new TextDecoder();
  child.stderr.pipeTo(new WritableStream({ write: (b) => void (text += dec.decode(b)) }))
    .catch(() => {});
  const log = () => text;
  for (let i = 0; i < 300; i++) {
    if (await Deno.lstat(d.socket).then((s) => s.isSocket, () => false)) return { child, log };
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGKILL");
  await child.status;
  throw new Error(`The thick daemon did not listen on "${d.socket}"`);
}

/** The daemon-side times (ms) of the ADDs and DELs in a piece of a daemon's log. */
export function servedMs(log: string): { add: number[]; del: number[] } {
  const out = { add: [] as number[], del: [] as number[] };
  for (const m of log.matchAll(/: (ADD|DEL) \S+ \S+: exit 0 in ([0-9.]+) ms/g)) {
    (m[1] === "ADD" ? out.add : out.del).push(Number(m[2]));
  }
  return out;
}
