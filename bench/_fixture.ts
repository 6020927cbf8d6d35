/**
 * The bench's world: a temp dir, one set of throwaway `pp` pod netns per contender, the
 * network definitions (the same bridge + host-local conf for podplex and the reference), and
 * the cleanup that removes all of it, on success, error or Ctrl-C.
 *
 * @module
 */

import { type BuildInfo, snapshotBuild } from "./_build.ts";
import { startThickDaemon } from "./_daemons.ts";

/**
 * The contenders, in the order of their address blocks. `podplex` is bin/podplex of a
 * checkout (which execs the artifact in dist/node/); `serve` is podplex behind a resident
 * `podplex serve` daemon, exec'd as the launcher would: `<payload>/podplex-client -- deno ...`;
 * `artifact` is the node artifact as `podplex install` put it into a CNI bin dir, exec'd
 * directly, as kubelet's runtime on a node does; `thick` is thick mode as deployed: that
 * same installed entry is the host's shim, and the daemon runs in a container of its own
 * with the DaemonSet's mounts (bench/_daemons.ts).
 */
export const CONTENDERS = ["podplex", "reference", "floor", "serve", "artifact", "thick"] as const;
/** A contender's name. */
export type ContenderId = typeof CONTENDERS[number];

/** The most attachments a scenario uses. */
export const MAX_ATTACHMENTS = 5;

/** Everything one bench run creates; `cleanup()` removes it. */
export interface Fixture {
  /** 4 hex chars in every name this run creates. */
  rid: string;
  dir: string;
  pods: number;
  /** The frozen copy of bin/podplex + dist/ that the bench execs. */
  build: BuildInfo;
  /** The `podplex serve` daemon of the `serve` contender. */
  daemon?: Deno.ChildProcess;
  /** The thick contender's daemon (in its own mount namespace). */
  thick?: Deno.ChildProcess;
  /** Its log so far (a line per call). */
  thickLog?: () => string;
  /** The entry `podplex install` wrote into the `artifact` contender's CNI bin dir. */
  installed: string;
  cleanup(): Promise<void>;
}

/** The block index of a contender: its subnets are 10.236.(8k+i).0/24. */
export function block(c: ContenderId): number {
  return CONTENDERS.indexOf(c) * 8;
}

/** The sandbox ifname of attachment `i`, as podplex names them (eth0, net1, net2...). */
export function ifname(i: number): string {
  return i === 0 ? "eth0" : `net${i}`;
}

/** The pod netns name of pod `j` of contender `c`. */
export function netnsName(f: Fixture, c: ContenderId, j: number): string {
  return `pp${f.rid}${c[0]}${j}`;
}

/** The bridge of attachment `i` of contender `c`. */
export function bridgeName(f: Fixture, c: ContenderId, i: number): string {
  return `pp${f.rid}${c[0]}b${i}`;
}

/** The subnet of attachment `i` of contender `c` (its prefix without the host byte). */
export function subnet(c: ContenderId, i: number): string {
  return `10.236.${block(c) + i}`;
}

/** The extra route each attachment installs (a route per interface, as pods often get). */
export function routeDst(c: ContenderId, i: number): string {
  return `172.31.${block(c) + i}.0/24`;
}

/** host-local's dataDir of a contender. */
export function leasesDir(f: Fixture, c: ContenderId): string {
  return `${f.dir}/leases-${c}`;
}

/** podplex's stateDir (`serve` has its own). */
export function stateDir(f: Fixture, c: ContenderId = "podplex"): string {
  return `${f.dir}/${c}/state`;
}

/** The pid of a contender's daemon (serve, thick), whose CPU and memory count too. */
export function daemonPid(f: Fixture, c: ContenderId): number | undefined {
  return c === "serve" ? f.daemon?.pid : c === "thick" ? f.thick?.pid : undefined;
}

/** podplex's networksDir (`serve` has its own). */
export function networksDir(f: Fixture, c: ContenderId = "podplex"): string {
  return `${f.dir}/${c}/networks.d`;
}

/** Whether a contender is podplex (exec'd directly or through its daemon). */
export function isPodplex(c: ContenderId): boolean {
  return c !== "reference" && c !== "floor";
}

/** The socket of the `serve` contender's daemon. */
export function serveSocket(f: Fixture): string {
  return `${f.dir}/serve/run/podplex.sock`;
}

/** The reference conf file of attachment `i` of contender `c` (stdin of a bridge exec). */
export function netConfFile(f: Fixture, c: ContenderId, i: number): string {
  return isPodplex(c) ? `${networksDir(f, c)}/default/net${i}.json` : `${f.dir}/${c}/net${i}.json`;
}

/** The same conf a user would write for the reference bridge: bridge + host-local + a route. */
function netConf(f: Fixture, c: ContenderId, i: number): Record<string, unknown> {
  return {
    cniVersion: "1.0.0",
    name: `net${i}`,
    type: "bridge",
    bridge: bridgeName(f, c, i),
    ipam: {
      type: "host-local",
      subnet: `${subnet(c, i)}.0/24`,
      routes: [{ dst: routeDst(c, i) }],
      dataDir: leasesDir(f, c),
    },
  };
}

/** podplex's conf for `n` attachments: the cluster network plus n-1 default networks. */
export function podplexConfFile(f: Fixture, n: number, c: ContenderId = "podplex"): string {
  return `${f.dir}/${c}/conf-${n}.json`;
}

function podplexConf(f: Fixture, n: number, c: ContenderId): Record<string, unknown> {
  return {
    cniVersion: "1.0.0",
    name: "podplex",
    type: "podplex",
    clusterNetwork: "default/net0",
    defaultNetworks: Array.from({ length: n - 1 }, (_, i) => `default/net${i + 1}`),
    networksDir: networksDir(f, c),
    stateDir: stateDir(f, c),
    // Thick: every file a call may read is under the daemon's mounts, or it runs per call.
    ...(c === "thick" ? { confDir: `${f.dir}/thick/net.d` } : {}),
  };
}

async function ip(...args: string[]): Promise<boolean> {
  const out = await new Deno.Command("ip", { args, stdout: "null", stderr: "piped" }).output();
  return out.success;
}

async function ipOrThrow(...args: string[]): Promise<void> {
  const out = await new Deno.Command("ip", { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`"ip ${args.join(" ")}" failed: ${err}`);
  }
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(path, JSON.stringify(value));
}

/** Removes every netns and link whose name carries this run's id, then the temp dir. */
async function removeAll(f: Fixture): Promise<void> {
  for (const d of [f.daemon, f.thick]) {
    if (!d) continue;
    d.kill("SIGTERM");
    await d.status;
  }
  const prefix = `pp${f.rid}`;
  const netns = await new Deno.Command("ip", { args: ["netns", "list"], stdout: "piped" })
    .output();
  for (const line of new TextDecoder().decode(netns.stdout).split("\n")) {
    const name = line.split(" ")[0];
    if (name.startsWith(prefix)) await ip("netns", "delete", name);
  }
  const links = await new Deno.Command("ip", { args: ["-j", "link", "show"], stdout: "piped" })
    .output();
  const list = JSON.parse(new TextDecoder().decode(links.stdout) || "[]") as { ifname: string }[];
  for (const { ifname } of list) {
    if (ifname.startsWith(prefix)) await ip("link", "delete", ifname);
  }
  await Deno.remove(f.dir, { recursive: true }).catch(() => {});
}

/** Installs the frozen build's artifact into `<dir>/artifact/bin` with `podplex install`. */
async function installArtifact(f: Fixture): Promise<string> {
  const bin = `${f.dir}/artifact/bin`;
  const confDir = `${f.dir}/artifact/net.d`;
  for (const d of [bin, confDir]) await Deno.mkdir(d, { recursive: true });
  const out = await new Deno.Command(f.build.bin, {
    args: ["install", "--bin-dir", bin, "--conf-dir", confDir, "--cluster-network", "default/net0"],
    env: { PODPLEX_SOCKET: "/nonexistent" },
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`podplex install failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return `${bin}/podplex`;
}

/** Starts `podplex serve` from the frozen build on serveSocket(f) (its client is the artifact's). */
async function startDaemon(f: Fixture): Promise<Deno.ChildProcess> {
  const daemon = new Deno.Command(f.build.bin, {
    args: ["serve", "--socket", serveSocket(f)],
    stdout: "null",
    stderr: "null",
  }).spawn();
  for (let i = 0; i < 200; i++) {
    if (await Deno.lstat(serveSocket(f)).then((s) => s.isSocket, () => false)) return daemon;
    await new Promise((r) => setTimeout(r, 50));
  }
  daemon.kill("SIGKILL");
  await daemon.status;
  throw new Error(`podplex serve did not listen on "${serveSocket(f)}"`);
}

/**
 * Creates the bench's temp dir, conf files and `pods` netns per contender; the floor's
 * bridges too (the reference bridge and podplex create theirs on their first ADD).
 */
export async function createFixture(pods: number): Promise<Fixture> {
  const rid = Array.from(
    crypto.getRandomValues(new Uint8Array(2)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const dir = await Deno.makeTempDir({ prefix: `pp${rid}bench` });
  const f: Fixture = {
    rid,
    dir,
    pods,
    build: undefined!,
    installed: "",
    cleanup: () => removeAll(f),
  };
  try {
    f.build = await snapshotBuild(`${dir}/podplex-root`);
    f.installed = await installArtifact(f);
    for (const c of CONTENDERS) {
      for (let i = 0; i < MAX_ATTACHMENTS; i++) {
        if (c !== "floor") await writeJson(netConfFile(f, c, i), netConf(f, c, i));
      }
      for (let j = 0; j < pods; j++) await ipOrThrow("netns", "add", netnsName(f, c, j));
    }
    for (let n = 1; n <= MAX_ATTACHMENTS; n++) {
      for (const c of CONTENDERS.filter(isPodplex)) {
        await writeJson(podplexConfFile(f, n, c), podplexConf(f, n, c));
      }
    }
    f.daemon = await startDaemon(f);
    const thick = await startThickDaemon(f, f.installed.replace(/\/podplex$/, ""));
    f.thick = thick.child;
    f.thickLog = thick.log;
    for (let i = 0; i < MAX_ATTACHMENTS; i++) {
      const br = bridgeName(f, "floor", i);
      await ipOrThrow("link", "add", br, "type", "bridge");
      await ipOrThrow("link", "set", br, "up");
    }
  } catch (e) {
    await f.cleanup();
    throw e;
  }
  return f;
}
