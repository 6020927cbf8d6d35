/**
 * What each contender execs for one pod's ADD and DEL, and the checks (outside the timed
 * region) that the pod really got its interfaces and really lost them.
 *
 * - podplex: `bin/podplex` once per pod, exactly as a runtime execs it (env + stdin).
 * - serve: the same call through a resident `podplex serve`: the client with the launcher's
 *   deno command after `--` (the sh launcher's ~1 ms is not included).
 * - thick: thick mode as deployed: the installed entry (the host's shim: sh launcher, then the
 *   client) talking to the daemon in its own mount namespace (bench/_daemons.ts).
 * - reference: `/usr/lib/cni/bridge` (host-local IPAM) once per attachment, DEL in reverse.
 * - floor: the same kernel work by `ip -batch`: one process for the host side (veth pair with
 *   its peer born in the pod netns, bridge port, up) and one inside the pod netns (up,
 *   address, route), since an `ip -batch` line cannot switch netns; DEL deletes the veths.
 *
 * @module
 */
import type { ExecSpec, PodJob } from "./_runner.ts";
import { thickDirs } from "./_daemons.ts";
import { DENO_FLAGS } from "./_build.ts";
import {
  bridgeName,
  type ContenderId,
  type Fixture,
  ifname,
  isPodplex,
  leasesDir,
  netConfFile,
  netnsName,
  podplexConfFile,
  routeDst,
  serveSocket,
  stateDir,
  subnet,
} from "./_fixture.ts";

/** The Debian reference plugins. */
export const REFERENCE_DIR = "/usr/lib/cni";
const IP = "/usr/sbin/ip";

/** What every exec gets besides CNI_*: a runtime passes its own environment on. */
export const BASE_ENV = {
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  HOME: "/root",
};

/** The CNI env of one call, as containerd's CRI plugin sets it. */
export function cniEnv(
  f: Fixture,
  c: ContenderId,
  j: number,
  command: "ADD" | "DEL",
  ifName = "eth0",
): Record<string, string> {
  return {
    ...BASE_ENV,
    CNI_COMMAND: command,
    CNI_CONTAINERID: `pp${f.rid}${c[0]}pod${j}`,
    CNI_NETNS: `/run/netns/${netnsName(f, c, j)}`,
    CNI_IFNAME: ifName,
    CNI_PATH: REFERENCE_DIR,
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod${j}`,
  };
}

function podplexExec(f: Fixture, j: number, n: number, cmd: "ADD" | "DEL"): ExecSpec[] {
  return [{ path: f.build.bin, env: cniEnv(f, "podplex", j, cmd), stdin: podplexConfFile(f, n) }];
}

function artifactExec(f: Fixture, j: number, n: number, cmd: "ADD" | "DEL"): ExecSpec[] {
  const env = cniEnv(f, "artifact", j, cmd);
  return [{ path: f.installed, env, stdin: podplexConfFile(f, n, "artifact") }];
}

/** Thick mode as deployed: the installed entry (the host's shim) and the daemon's socket. */
function thickExec(f: Fixture, j: number, n: number, cmd: "ADD" | "DEL"): ExecSpec[] {
  const env = { ...cniEnv(f, "thick", j, cmd), PODPLEX_SOCKET: thickDirs(f).socket };
  return [{ path: f.installed, env, stdin: podplexConfFile(f, n, "thick") }];
}

function serveExec(f: Fixture, j: number, n: number, cmd: "ADD" | "DEL"): ExecSpec[] {
  return [{
    path: `${f.build.payload}/podplex-client`,
    args: ["--", f.build.deno, ...DENO_FLAGS, f.build.entry],
    env: {
      ...cniEnv(f, "serve", j, cmd),
      PODPLEX_SOCKET: serveSocket(f),
      PODPLEX_ARGV0: "podplex",
    },
    stdin: podplexConfFile(f, n, "serve"),
  }];
}

function referenceExecs(f: Fixture, j: number, n: number, cmd: "ADD" | "DEL"): ExecSpec[] {
  const order = Array.from({ length: n }, (_, i) => i);
  if (cmd === "DEL") order.reverse();
  return order.map((i) => ({
    path: `${REFERENCE_DIR}/bridge`,
    env: cniEnv(f, "reference", j, cmd, ifname(i)),
    stdin: netConfFile(f, "reference", i),
  }));
}

function hostVeth(f: Fixture, j: number, i: number): string {
  return `pp${f.rid}f${j}v${i}`;
}

async function floorExecs(
  f: Fixture,
  j: number,
  n: number,
  cmd: "ADD" | "DEL",
): Promise<ExecSpec[]> {
  const ns = netnsName(f, "floor", j);
  const host: string[] = [];
  const pod: string[] = [];
  for (let i = 0; i < n; i++) {
    const hv = hostVeth(f, j, i);
    if (cmd === "DEL") {
      host.push(`link del ${hv}`);
      continue;
    }
    host.push(`link add ${hv} type veth peer name ${ifname(i)} netns ${ns}`);
    host.push(`link set ${hv} master ${bridgeName(f, "floor", i)} up`);
    pod.push(`link set ${ifname(i)} up`);
    pod.push(`addr add ${subnet("floor", i)}.${10 + j}/24 dev ${ifname(i)}`);
    pod.push(`route add ${routeDst("floor", i)} via ${subnet("floor", i)}.1 dev ${ifname(i)}`);
  }
  const base = `${f.dir}/floor/${cmd}-${n}-${j}`;
  await Deno.mkdir(`${f.dir}/floor`, { recursive: true });
  await Deno.writeTextFile(`${base}.host`, host.join("\n") + "\n");
  const execs: ExecSpec[] = [{ path: IP, args: ["-batch", `${base}.host`], env: BASE_ENV }];
  if (pod.length) {
    await Deno.writeTextFile(`${base}.pod`, pod.join("\n") + "\n");
    execs.push({ path: IP, args: ["-n", ns, "-batch", `${base}.pod`], env: BASE_ENV });
  }
  return execs;
}

/** The execs of one pod's ADD or DEL with `n` attachments for contender `c`. */
export async function podJob(
  f: Fixture,
  c: ContenderId,
  j: number,
  n: number,
  cmd: "ADD" | "DEL",
): Promise<PodJob> {
  const execs = c === "podplex"
    ? podplexExec(f, j, n, cmd)
    : c === "artifact"
    ? artifactExec(f, j, n, cmd)
    : c === "thick"
    ? thickExec(f, j, n, cmd)
    : c === "serve"
    ? serveExec(f, j, n, cmd)
    : c === "reference"
    ? referenceExecs(f, j, n, cmd)
    : await floorExecs(f, j, n, cmd);
  return { label: `${c}-${cmd}-${n}-pod${j}`, execs };
}

async function ipJson(ns: string, ...args: string[]): Promise<Record<string, unknown>[]> {
  const out = await new Deno.Command("ip", { args: ["-j", "-n", ns, ...args], stdout: "piped" })
    .output();
  if (!out.success) throw new Error(`Cannot read ${args.join(" ")} of netns "${ns}"`);
  const text = new TextDecoder().decode(out.stdout).trim();
  return text ? JSON.parse(text) : [];
}

/**
 * Checks that pod `j` of `c` has exactly lo plus `n` interfaces, each with an address in its
 * subnet and its route.
 *
 * @throws {Error} naming what is missing
 */
export async function verifyAdded(f: Fixture, c: ContenderId, j: number, n: number): Promise<void> {
  const ns = netnsName(f, c, j);
  const links = await ipJson(ns, "addr", "show");
  const names = links.map((l) => l.ifname as string).filter((x) => x !== "lo").sort();
  const want = Array.from({ length: n }, (_, i) => ifname(i)).sort();
  if (names.join() !== want.join()) {
    throw new Error(
      `${c} pod ${j}: interfaces ${JSON.stringify(names)}, expected ${JSON.stringify(want)}`,
    );
  }
  const routes = (await ipJson(ns, "route", "show")).map((r) => r.dst as string);
  for (let i = 0; i < n; i++) {
    const link = links.find((l) => l.ifname === ifname(i))!;
    const addrs = (link.addr_info as { family: string; local: string }[])
      .filter((a) => a.family === "inet").map((a) => a.local);
    if (!addrs.some((a) => a.startsWith(`${subnet(c, i)}.`))) {
      throw new Error(
        `${c} pod ${j}: "${ifname(i)}" has no address in ${subnet(c, i)}.0/24 (${addrs})`,
      );
    }
    if (!routes.includes(routeDst(c, i))) {
      throw new Error(`${c} pod ${j}: no route to ${routeDst(c, i)} (routes: ${routes})`);
    }
  }
}

/** Checks that pod `j` of `c` has nothing but lo left. */
export async function verifyDeleted(f: Fixture, c: ContenderId, j: number): Promise<void> {
  const ns = netnsName(f, c, j);
  const left = (await ipJson(ns, "link", "show")).map((l) => l.ifname).filter((x) => x !== "lo");
  if (left.length) throw new Error(`${c} pod ${j}: DEL left ${JSON.stringify(left)} behind`);
}

async function filesUnder(dir: string, keep: (name: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) out.push(...await filesUnder(`${dir}/${e.name}`, keep));
      else if (keep(e.name)) out.push(`${dir}/${e.name}`);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out;
}

/** Checks that a contender holds no lease (and podplex no state) once all its pods are gone. */
export async function verifyReleased(f: Fixture, c: ContenderId): Promise<void> {
  const leases = await filesUnder(leasesDir(f, c), (n) => /^[0-9.]+$/.test(n));
  const state = isPodplex(c) ? await filesUnder(stateDir(f, c), () => true) : [];
  if (leases.length || state.length) {
    throw new Error(`${c}: DEL left ${[...leases, ...state].join(", ")} behind`);
  }
}
