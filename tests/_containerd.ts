/**
 * A private containerd (Debian's, 1.6 here) for the tests that drive podplex as kubelet does,
 * through the CRI: its own config.toml (version 2), root, state, gRPC socket, CNI bin and conf
 * dirs, all under one temp dir, the CRI plugin with runc (cgroupfs) and a pause image built
 * here (tests/_pause_image.ts).
 *
 * containerd 1.6 keeps a few paths it does not let a config move: the shims' sockets under
 * /run/containerd/s/, the sandboxes' netns pins under /var/run/netns/cni-*, runc's state under
 * /run/containerd/runc. So the instance runs in a mount namespace of its own (a holder process
 * under `unshare -m`, propagation slave) with a fresh tmpfs on /run: the host's /run/containerd
 * and /run/netns are never touched, and everything the instance mounted goes with the
 * namespace. The network namespace is the host's, as on a node. A check of a pod's netns or a
 * daemon that must see the same netns files runs in that mount namespace too (`inNs`).
 *
 * Dispose stops and removes every sandbox (CNI DEL through containerd), stops containerd,
 * kills what is left in the namespace (shims, pause processes), and removes the temp dir,
 * also when a test failed.
 *
 * @module
 */
import { CriClient } from "./_cri_client.ts";
import { buildPauseImage, PAUSE_IMAGE } from "./_pause_image.ts";
import { isRoot, run, tryRun } from "./testutils.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** The podplex launcher of this checkout (execs dist/node/, the built artifact). */
export const LAUNCHER = `${ROOT}/bin/podplex`;
const dec = new TextDecoder();

/** Why containerd cannot run here, or undefined when it can (checked once per test file). */
export async function containerdSkip(): Promise<string | undefined> {
  if (!isRoot) return "not root (containerd and CNI need it)";
  for (const tool of ["containerd", "ctr", "containerd-shim-runc-v2", "runc", "unshare", "gcc"]) {
    if (!(await tryRun("sh", "-c", `command -v ${tool}`))) {
      return `${tool} is not installed (bash scripts/setup.sh installs containerd, runc, gcc)`;
    }
  }
  if (!(await Deno.stat(`${ROOT}/dist/node/podplex`).then(() => true, () => false))) {
    return "no dist/node/podplex (run deno task build)";
  }
  return undefined;
}

/** How to start the instance. */
export interface ContainerdOptions {
  /** Reference plugins linked from /usr/lib/cni into the CNI bin dir (loopback always). */
  plugins?: string[];
  /** Extra environment of containerd (and so of every plugin it execs), e.g. PODPLEX_SOCKET. */
  env?: Record<string, string>;
}

/** A running private containerd. */
export interface Containerd extends AsyncDisposable {
  dir: string;
  socket: string;
  /** The CNI bin dir (bin_dir) and conf dir (conf_dir) containerd's CRI reads. */
  binDir: string;
  confDir: string;
  cri: CriClient;
  /** containerd's pid (it changes on `restart`). */
  pid(): number;
  /** containerd's log so far (plugin stderr shows up here). */
  log(): Promise<string>;
  /** SIGKILLs containerd (shims and pods stay up, as on a node). */
  kill(): Promise<void>;
  /** Starts containerd again on the same root, state and socket; waits for the CRI. */
  start(): Promise<void>;
  /** Runs a command in the instance's mount namespace (its /run/netns); throws on failure. */
  inNs(cmd: string, ...args: string[]): Promise<string>;
  /** A sandbox's netns path, from PodSandboxStatus's verbose info. */
  netnsOf(id: string): Promise<string>;
  /** The netns pins containerd holds (names under the instance's /run/netns). */
  netnsPins(): Promise<string[]>;
  /** Spawns a process in the instance's mount namespace (e.g. `podplex serve`). */
  spawnInNs(cmd: string, args: string[], env?: Record<string, string>): Deno.ChildProcess;
}

function config(dir: string, binDir: string, confDir: string): string {
  const cri = `plugins."io.containerd.grpc.v1.cri"`;
  return `version = 2
root = "${dir}/root"
state = "${dir}/state"
# What a pod sandbox does not need (and opt, which would create /opt/containerd).
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.overlayfs",
  "io.containerd.internal.v1.opt",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "${dir}/containerd.sock"

[ttrpc]
  address = "${dir}/containerd.sock.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[${cri}]
  sandbox_image = "${PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  # The sandbox's oom_score_adj (-998) is below what this machine lets a process set: capped
  # at containerd's own, as on a node where containerd runs unprivileged in that respect.
  restrict_oom_score_adj = true

[${cri}.containerd]
  snapshotter = "native"
  default_runtime_name = "runc"

[${cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[${cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false

[${cri}.cni]
  bin_dir = "${binDir}"
  conf_dir = "${confDir}"
  max_conf_num = 1
`;
}

/** Waits for `probe` to succeed within `ms` (a loaded machine: generous bounds, no timing). */
export async function until<T>(what: string, ms: number, probe: () => Promise<T>): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`Timed out (${ms} ms) waiting for ${what}: ${last}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The holder of the private mount namespace: a tmpfs on /run, then sleeps. */
async function holdMountNs(): Promise<Deno.ChildProcess> {
  const child = new Deno.Command("unshare", {
    args: [
      "--mount",
      "--propagation",
      "slave",
      "--",
      "sh",
      "-c",
      "mount -t tmpfs -o mode=0755 ppc-run /run && mkdir -p /run/netns && echo up && exec sleep 100000",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  if (!value || !dec.decode(value).includes("up")) {
    const err = await new Response(child.stderr).text();
    throw new Error(`the private mount namespace did not come up: ${err}`);
  }
  child.stdout.cancel().catch(() => {});
  return child;
}

/** Pids of the processes in the holder's mount namespace, other than the holder. */
async function pidsInNs(holder: number): Promise<number[]> {
  const mine = await Deno.readLink(`/proc/${holder}/ns/mnt`).catch(() => "");
  if (!mine) return [];
  const out: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    const pid = Number(e.name);
    if (!pid || pid === holder) continue;
    if ((await Deno.readLink(`/proc/${pid}/ns/mnt`).catch(() => "")) === mine) out.push(pid);
  }
  return out;
}

/**
 * Starts a private containerd under a `ppc` temp dir, with the pause image imported. The CNI
 * conf dir starts empty: write the conflist before the first RunPodSandbox (containerd reloads
 * the dir on change).
 */
export async function startContainerd(opts: ContainerdOptions = {}): Promise<Containerd> {
  const dir = await Deno.makeTempDir({ prefix: "ppc-ctrd" });
  const binDir = `${dir}/cni-bin`;
  const confDir = `${dir}/net.d`;
  const socket = `${dir}/containerd.sock`;
  const logFile = `${dir}/containerd.log`;
  const cfg = `${dir}/config.toml`;
  let holder: Deno.ChildProcess | undefined;
  let ctrd: Deno.ChildProcess | undefined;
  let cri: CriClient | undefined;
  const nsArgs = () => ["-t", String(holder!.pid), "-m", "--"];

  const inNs = (cmd: string, ...args: string[]) => run("nsenter", ...nsArgs(), cmd, ...args);
  const spawnInNs = (cmd: string, args: string[], env: Record<string, string> = {}) =>
    new Deno.Command("nsenter", {
      args: [...nsArgs(), cmd, ...args],
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();

  const start = async () => {
    ctrd = new Deno.Command("nsenter", {
      args: [
        ...nsArgs(),
        "sh",
        "-c",
        `exec containerd --config "$1" >>"$2" 2>&1`,
        "sh",
        cfg,
        logFile,
      ],
      env: opts.env ?? {},
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const exited = ctrd.status.then((s) => s);
    await until("containerd's CRI to answer (30 s)", 30_000, async () => {
      const done = await Promise.race([exited, Promise.resolve(undefined)]);
      if (done) {
        throw new Error(`containerd exited ${done.code}:\n${await Deno.readTextFile(logFile)}`);
      }
      return (await cri!.version()).runtimeName;
    });
  };

  const stopSandboxes = async () => {
    if (!cri || !ctrd) return;
    const items = await cri.listPodSandbox().catch(() => []);
    for (const s of items) {
      await cri.stopPodSandbox(s.id).catch(() => {});
      await cri.removePodSandbox(s.id).catch(() => {});
    }
  };

  const killContainerd = async (signal: Deno.Signal) => {
    if (!ctrd) return;
    try {
      ctrd.kill(signal);
    } catch { /* exited */ }
    await ctrd.status;
    ctrd = undefined;
  };

  const dispose = async () => {
    await stopSandboxes().catch(() => {});
    cri?.close();
    if (ctrd) {
      const t = setTimeout(() => ctrd && tryKill(ctrd, "SIGKILL"), 10_000);
      await killContainerd("SIGTERM");
      clearTimeout(t);
    }
    if (holder) {
      // Shims and pause processes containerd started: ours, killed by pid.
      for (const pid of await pidsInNs(holder.pid)) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
      tryKill(holder, "SIGKILL");
      await holder.status;
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };

  try {
    for (const d of [binDir, confDir, `${dir}/root`, `${dir}/state`]) {
      await Deno.mkdir(d, { recursive: true });
    }
    for (const p of new Set(["loopback", ...(opts.plugins ?? [])])) {
      await Deno.symlink(`/usr/lib/cni/${p}`, `${binDir}/${p}`);
    }
    await Deno.writeTextFile(cfg, config(dir, binDir, confDir));
    const image = await buildPauseImage(`${dir}/image`);
    holder = await holdMountNs();
    cri = new CriClient(socket);
    await start();
    await run(
      "ctr",
      ...["-a", socket, "-n", "k8s.io", "images", "import", "--snapshotter", "native"],
      image,
    );
  } catch (e) {
    await dispose();
    throw e;
  }

  return {
    dir,
    socket,
    binDir,
    confDir,
    cri,
    pid: () => ctrd?.pid ?? 0,
    log: () => Deno.readTextFile(logFile).catch(() => ""),
    kill: () => killContainerd("SIGKILL"),
    start,
    inNs,
    spawnInNs,
    async netnsOf(id) {
      const st = await cri!.podSandboxStatus(id, true);
      const spec = st.info?.runtimeSpec as
        | { linux?: { namespaces?: { type: string; path?: string }[] } }
        | undefined;
      const path = spec?.linux?.namespaces?.find((n) => n.type === "network")?.path;
      if (!path) throw new Error(`no netns path in the status of ${id}`);
      return path;
    },
    async netnsPins() {
      const out = await inNs("ls", "-1", "/run/netns");
      return out.split("\n").filter(Boolean);
    },
    [Symbol.asyncDispose]: dispose,
  };
}

function tryKill(child: Deno.ChildProcess, signal: Deno.Signal) {
  try {
    child.kill(signal);
  } catch { /* exited */ }
}
