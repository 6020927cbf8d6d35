/**
 * The scale bench's world (bench/scale_bench.ts): the temp dir, the networks (/20s, room for
 * every pod) and the podplex conf, the installed entry and its daemon, the pod netns; each
 * probe contender's execs; and the counts of leases and state files checked after each step.
 *
 * @module
 */
import { snapshotBuild } from "./_build.ts";
import { BASE_ENV, REFERENCE_DIR } from "./_contenders.ts";
import type { ExecSpec } from "./_runner.ts";

export const progress = (s: string) => console.error(`scale: ${s}`);
export const ATTACHMENTS = 3;
export type Mode = "per call" | "thick";
export const MODES: Mode[] = ["per call", "thick"];
/** The probe's contenders: podplex's modes, and the reference and the kernel floor beside. */
export type Probe = Mode | "reference" | "floor";
export const PROBES: Probe[] = [...MODES, "reference", "floor"];

export interface World {
  rid: string;
  dir: string;
  entry: string;
  bin: string;
  socket: string;
  conf: string;
  daemon?: Deno.ChildProcess;
}

type PodId = number | "probe" | "ref" | "floor" | `c${number}`;
/** The pods that run the leak check's ADD/DEL cycles side by side. */
export const CYCLERS = 4;
export const netns = (w: World, j: PodId) =>
  `pp${w.rid}${typeof j === "number" ? `p${j}` : j.slice(0, 2)}`;
const leaseDir = (w: World, i: number) => `${w.dir}/leases/net${i}`;

export async function run(
  cmd: string,
  args: string[],
  env?: Record<string, string>,
): Promise<string> {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  if (!out.success) throw new Error(`"${cmd} ${args.join(" ")}" failed: ${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}

async function ipBatch(w: World, lines: string[]): Promise<void> {
  const file = `${w.dir}/ip.batch`;
  await Deno.writeTextFile(file, lines.join("\n") + "\n");
  await run("ip", ["-force", "-batch", file]);
}

export async function writeJson(path: string, value: unknown): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(path, JSON.stringify(value));
}

/** The networks (/20s: room for every pod), the podplex conf, the entry installed, the daemon. */
export async function newWorld(): Promise<World> {
  const rid = Array.from(crypto.getRandomValues(new Uint8Array(2)), (b) => b.toString(16))
    .map((h) => h.padStart(2, "0")).join("");
  const dir = await Deno.makeTempDir({ prefix: `pp${rid}scale` });
  return { rid, dir, entry: "", bin: "", socket: `${dir}/run/podplex.sock`, conf: "" };
}

export async function setUp(w: World, pods: number): Promise<void> {
  const { dir, rid } = w;
  const build = await snapshotBuild(`${dir}/podplex-root`);
  w.bin = build.bin;
  for (const d of ["bin", "net.d"]) await Deno.mkdir(`${dir}/${d}`, { recursive: true });
  await run(w.bin, [
    "install",
    "--bin-dir",
    `${dir}/bin`,
    "--conf-dir",
    `${dir}/net.d`,
    "--cluster-network",
    "default/net0",
  ], { PATH: BASE_ENV.PATH, PODPLEX_SOCKET: "/nonexistent" });
  w.entry = `${dir}/bin/podplex`;
  for (let i = 0; i < ATTACHMENTS; i++) {
    await writeJson(`${dir}/networks.d/default/net${i}.json`, {
      cniVersion: "1.0.0",
      name: `net${i}`,
      type: "bridge",
      bridge: `pp${rid}b${i}`,
      ipam: {
        type: "host-local",
        subnet: `10.238.${16 * i}.0/20`,
        routes: [{ dst: `172.30.${i}.0/24` }],
        dataDir: `${dir}/leases`,
      },
    });
  }
  w.conf = `${dir}/podplex.json`;
  await writeJson(w.conf, {
    cniVersion: "1.0.0",
    name: "podplex",
    type: "podplex",
    clusterNetwork: "default/net0",
    defaultNetworks: Array.from({ length: ATTACHMENTS - 1 }, (_, i) => `default/net${i + 1}`),
    networksDir: `${dir}/networks.d`,
    stateDir: `${dir}/state`,
  });
  const names = [
    ...Array.from({ length: pods }, (_, j) => netns(w, j)),
    ...(["probe", "ref", "floor"] as const).map((p) => netns(w, p)),
    ...Array.from({ length: CYCLERS }, (_, k) => netns(w, `c${k}`)),
  ];
  await ipBatch(w, names.map((n) => `netns add ${n}`));
  w.daemon = new Deno.Command(w.bin, {
    args: ["serve", "--socket", w.socket],
    stdout: "null",
    stderr: "null",
  }).spawn();
  for (let i = 0; i < 200; i++) {
    if (await Deno.lstat(w.socket).then((s) => s.isSocket, () => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`podplex serve did not listen on "${w.socket}"`);
}

export async function tearDown(w: World): Promise<void> {
  if (w.daemon) {
    w.daemon.kill("SIGTERM");
    await w.daemon.status;
  }
  const prefix = `pp${w.rid}`;
  const ns = (await run("ip", ["netns", "list"])).split("\n").map((l) => l.split(" ")[0]);
  const links = JSON.parse(await run("ip", ["-j", "link", "show"]) || "[]") as {
    ifname: string;
  }[];
  await ipBatch(w, [
    ...ns.filter((n) => n.startsWith(prefix)).map((n) => `netns del ${n}`),
    ...links.filter((l) => l.ifname.startsWith(prefix)).map((l) => `link del ${l.ifname}`),
  ]).catch((e) => progress(`cleanup: ${e.message}`));
  await Deno.remove(w.dir, { recursive: true }).catch(() => {});
}

export function cni(w: World, j: PodId, cmd: "ADD" | "DEL", mode: Mode, ifname = "eth0"): ExecSpec {
  return {
    path: w.entry,
    env: {
      ...BASE_ENV,
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: `pp${w.rid}pod${j}`,
      CNI_NETNS: `/run/netns/${netns(w, j)}`,
      CNI_IFNAME: ifname,
      CNI_PATH: REFERENCE_DIR,
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod${j}`,
      PODPLEX_SOCKET: mode === "thick" ? w.socket : "/nonexistent/podplex.sock",
    },
    stdin: w.conf,
  };
}

/** The reference bridge plugin once per attachment (DEL in reverse), its own pod. */
function referenceExecs(w: World, cmd: "ADD" | "DEL"): ExecSpec[] {
  const order = Array.from({ length: ATTACHMENTS }, (_, i) => i);
  if (cmd === "DEL") order.reverse();
  return order.map((i) => ({
    ...cni(w, "ref", cmd, "per call", i === 0 ? "eth0" : `net${i}`),
    path: `${REFERENCE_DIR}/bridge`,
    stdin: `${w.dir}/networks.d/default/net${i}.json`,
  }));
}

/** The same kernel work by `ip -batch` (host side, then inside the pod), on the same bridges. */
async function floorExecs(w: World, cmd: "ADD" | "DEL"): Promise<ExecSpec[]> {
  const ns = netns(w, "floor");
  const host: string[] = [];
  const pod: string[] = [];
  for (let i = 0; i < ATTACHMENTS; i++) {
    const hv = `pp${w.rid}fv${i}`;
    const dev = i === 0 ? "eth0" : `net${i}`;
    if (cmd === "DEL") {
      host.push(`link del ${hv}`);
      continue;
    }
    host.push(`link add ${hv} type veth peer name ${dev} netns ${ns}`);
    host.push(`link set ${hv} master pp${w.rid}b${i} up`);
    pod.push(`link set ${dev} up`, `addr add 10.238.${16 * i + 15}.250/20 dev ${dev}`);
    pod.push(`route add 172.30.${i}.0/24 via 10.238.${16 * i}.1 dev ${dev}`);
  }
  const base = `${w.dir}/floor-${cmd}`;
  await Deno.writeTextFile(`${base}.host`, host.join("\n") + "\n");
  const execs: ExecSpec[] = [{
    path: "/usr/sbin/ip",
    args: ["-batch", `${base}.host`],
    env: BASE_ENV,
  }];
  if (pod.length) {
    await Deno.writeTextFile(`${base}.pod`, pod.join("\n") + "\n");
    execs.push({ path: "/usr/sbin/ip", args: ["-n", ns, "-batch", `${base}.pod`], env: BASE_ENV });
  }
  return execs;
}

export async function probeExecs(w: World, p: Probe, cmd: "ADD" | "DEL"): Promise<ExecSpec[]> {
  if (p === "reference") return referenceExecs(w, cmd);
  if (p === "floor") return await floorExecs(w, cmd);
  return [cni(w, "probe", cmd, p)];
}

function countFiles(dir: string, pattern: RegExp): number {
  let n = 0;
  try {
    for (const e of Deno.readDirSync(dir)) if (e.isFile && pattern.test(e.name)) n++;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return n;
}

/** Throws unless every network holds `pods` leases and the state dir `pods` pods. */
export function expectPods(w: World, pods: number, when: string): void {
  for (let i = 0; i < ATTACHMENTS; i++) {
    const n = countFiles(leaseDir(w, i), /^10\.238\./);
    if (n !== pods) throw new Error(`${when}: net${i} holds ${n} leases, expected ${pods}`);
  }
  const states = countFiles(`${w.dir}/state`, /\.json$/);
  if (states !== pods) throw new Error(`${when}: ${states} state files, expected ${pods}`);
}
