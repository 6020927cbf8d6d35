/**
 * A node in thick mode, for tests and the bench: a temp "host" tree laid out as a node's
 * (etc/cni/net.d with podplex's conflist, etc/cni/podplex/networks.d, opt/cni/bin with the
 * installed artifact, var/lib/cni, run/podplex), the daemon in a container of its own as the
 * DaemonSet makes it (tests/thick_container.sh under `unshare -m`: the image's /podplex, the
 * hostPath mounts at the same paths, /run/netns with propagation, hostNetwork, hostPID), and
 * a libcni-style runtime on the host (tests/cni_runner.py) that execs the installed entry,
 * the shim. Everything is removed on dispose, also when a test fails.
 *
 * @module
 */
import { ppName, run, tryRun } from "./testutils.ts";
import { THICK_DEFAULTS } from "../cli/serve/view.ts";
import { PODPLEX_CAPABILITIES } from "../cli/_config.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const dec = new TextDecoder();
const enc = new TextEncoder();

/** What one process call printed and returned. */
export interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** A running thick daemon. */
export interface ThickDaemon extends AsyncDisposable {
  pid: number;
  /** Its stderr so far (one line per call). */
  log(): string;
  /** How many calls of `verb` it ran (from its log). */
  served(verb: string): number;
  /** Signals it and waits for it to end (its mount namespace goes with it). */
  stop(signal?: Deno.Signal): Promise<void>;
}

/** A node's tree on the host. */
export interface ThickNode extends AsyncDisposable {
  dir: string;
  confDir: string;
  binDir: string;
  networksDir: string;
  stateDir: string;
  dataDir: string;
  runDir: string;
  socket: string;
  /** The dirs the DaemonSet mounts from the host at the same path. */
  hostPaths: string[];
  /** The bridges the networks use (removed on dispose). */
  bridges: string[];
  /** The podplex conflist the runtime reads (its text; write it back after a change). */
  conflist: string;
  /** A runtime call through the installed shim (cni_runner.py with the node's dirs). */
  runtime(command: "ADD" | "CHECK" | "DEL", pod: RuntimePod): Promise<Outcome>;
  /** A direct call of the installed entry with `stdin` (GC, STATUS, VERSION). */
  call(env: Record<string, string>, stdin: string): Promise<Outcome>;
  /**
   * ADD or DEL of a pod by the installed entry with podplex's own conf (as a runtime would
   * inject it), the pod's annotations as containerd passes them.
   */
  pod(
    command: "ADD" | "DEL" | "CHECK",
    pod: RuntimePod & { annotations?: Record<string, string> },
  ): Promise<Outcome>;
  startDaemon(extra?: string[]): Promise<ThickDaemon>;
}

/** A pod as the runtime names it. */
export interface RuntimePod {
  netns: string;
  id: string;
  name?: string;
  /** More variables for the plugins. */
  env?: Record<string, string>;
}

/** Options of {@linkcode thickNode}. */
export interface ThickNodeOptions {
  /** How many bridge + host-local networks (net-a, net-b...; the first is the cluster's). */
  networks?: number;
  /** The /16 the networks' /24s come from (default 10.211). */
  subnet?: string;
  /** Network i gets subnet `<subnet>.<offset + i>.0/24` (default 0). */
  offset?: number;
  /** Extra podplex conf fields. */
  conf?: Record<string, unknown>;
  /** The bridge names to use (another node's, to compare results); default: new ones. */
  bridges?: string[];
}

function bridgeConf(name: string, br: string, subnet: string, dataDir: string) {
  return {
    cniVersion: "1.0.0",
    name,
    type: "bridge",
    bridge: br,
    ipam: { type: "host-local", subnet, dataDir },
  };
}

/** Lays out a node's tree with `networks` networks and the installed artifact. */
export async function thickNode(opts: ThickNodeOptions = {}): Promise<ThickNode> {
  const dir = await Deno.makeTempDir({ prefix: "pptnode" });
  const p = (s: string) => `${dir}${s}`;
  const confDir = p("/etc/cni/net.d");
  const binDir = p("/opt/cni/bin");
  const networksDir = p("/etc/cni/podplex/networks.d");
  const stateDir = p("/var/lib/cni/podplex");
  const dataDir = p("/var/lib/cni/networks");
  const runDir = p("/run/podplex");
  for (const d of [confDir, binDir, `${networksDir}/default`, dataDir, runDir, p("/cache")]) {
    await Deno.mkdir(d, { recursive: true });
  }
  await run("cp", "-a", `${ROOT}/dist/node/.`, binDir);
  const count = opts.networks ?? 3;
  const bridges: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `net-${String.fromCharCode(97 + i)}`;
    const br = opts.bridges?.[i] ?? ppName("tb");
    if (!opts.bridges) bridges.push(br);
    const subnet = `${opts.subnet ?? "10.211"}.${(opts.offset ?? 0) + i}.0/24`;
    await Deno.writeTextFile(
      `${networksDir}/default/${name}.json`,
      JSON.stringify(bridgeConf(name, br, subnet, dataDir)),
    );
  }
  const conflist = JSON.stringify({
    cniVersion: "1.0.0",
    name: "podplex",
    plugins: [{
      type: "podplex",
      clusterNetwork: "default/net-a",
      defaultNetworks: Array.from(
        { length: count - 1 },
        (_, i) => `default/net-${String.fromCharCode(98 + i)}`,
      ),
      networksDir,
      stateDir,
      confDir,
      // As `podplex install` declares them: containerd passes the pod's annotations then.
      capabilities: PODPLEX_CAPABILITIES,
      ...opts.conf,
    }],
  });
  await Deno.writeTextFile(`${confDir}/00-podplex.conflist`, conflist);
  const socket = `${runDir}/podplex.sock`;
  const node: ThickNode = {
    dir,
    confDir,
    binDir,
    networksDir,
    stateDir,
    dataDir,
    runDir,
    socket,
    // What the DaemonSet mounts at the same paths (deploy/daemonset.yaml, checked against these).
    hostPaths: THICK_DEFAULTS.paths.filter((h) => !h.endsWith("/netns")).map(p),
    bridges,
    conflist,
    runtime: (command, pod) => runtime(node, command, pod),
    call: (env, stdin) => exec([`${binDir}/podplex`], { PODPLEX_SOCKET: socket, ...env }, stdin),
    startDaemon: (extra) => startDaemon(node, extra),
    pod: (command, pod) => {
      const list = JSON.parse(node.conflist);
      const conf: Record<string, unknown> = {
        ...list.plugins[0],
        cniVersion: list.cniVersion,
        name: list.name,
      };
      if (pod.annotations) {
        conf.runtimeConfig = { "io.kubernetes.cri.pod-annotations": pod.annotations };
      }
      return node.call({
        CNI_COMMAND: command,
        CNI_CONTAINERID: pod.id,
        CNI_NETNS: pod.netns,
        CNI_IFNAME: "eth0",
        CNI_PATH: binDir,
        CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod.name ?? pod.id}`,
        ...pod.env,
      }, JSON.stringify(conf));
    },
    async [Symbol.asyncDispose]() {
      for (const br of bridges) await tryRun("ip", "link", "del", br);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  return node;
}

/** Runs `argv` with `env` (plus PATH) and `stdin`, from `/`. */
export async function exec(
  argv: string[],
  env: Record<string, string>,
  stdin = "",
): Promise<Outcome> {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", ...env },
    clearEnv: true,
    cwd: "/",
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(enc.encode(stdin)).catch(() => {});
  await w.close().catch(() => {});
  const out = await child.output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function runtime(node: ThickNode, command: string, pod: RuntimePod): Promise<Outcome> {
  const env = { PODPLEX_SOCKET: node.socket, ...pod.env };
  return exec([
    "/usr/bin/python3",
    `${ROOT}/tests/cni_runner.py`,
    command,
    "--conf-dir",
    node.confDir,
    "--cni-path",
    node.binDir,
    "--cache-dir",
    `${node.dir}/cache`,
    "--netns",
    pod.netns,
    "--container-id",
    pod.id,
    "--args",
    `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod.name ?? pod.id}`,
    ...Object.entries(env).flatMap(([k, v]) => ["--env", `${k}=${v}`]),
  ], {});
}

/**
 * Starts `podplex serve` in its container: the installed artifact's copy as the image's
 * /podplex, the node's dirs as the hostPath mounts, the test process as the host (its root
 * and mount namespace, through /proc with hostPID).
 */
async function startDaemon(node: ThickNode, extra: string[] = []): Promise<ThickDaemon> {
  const root = `${node.dir}/.container`;
  await Deno.mkdir(root, { recursive: true });
  const hostPaths = [...node.hostPaths, "/run/netns"];
  const child = new Deno.Command("unshare", {
    args: [
      "-m",
      "--propagation",
      "slave",
      "sh",
      `${ROOT}/tests/thick_container.sh`,
      "/podplex/podplex",
      "serve",
      "--socket",
      node.socket,
      ...hostPaths.flatMap((h) => ["--host-path", h]),
      "--host-root",
      `/proc/${Deno.pid}/root`,
      "--host-mount-ns",
      `/proc/${Deno.pid}/ns/mnt`,
      ...extra,
    ],
    env: { ROOT: root, ARTIFACT: node.binDir, HOST_PATHS: node.hostPaths.join(":") },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const reading = (async () => {
    for await (const chunk of child.stderr) log += dec.decode(chunk);
  })();
  let stopped = false;
  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    if (stopped) return;
    stopped = true;
    try {
      child.kill(signal);
    } catch { /* gone */ }
    await child.status;
    await reading;
  };
  for (let i = 0; !/(podplex serve: |"msg":")listening on/.test(log); i++) {
    if (i > 300) {
      await stop("SIGKILL");
      throw new Error(`The thick daemon did not start: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    pid: child.pid,
    log: () => log,
    served: (verb) =>
      log.split("\n").filter((l) =>
        l.startsWith("{")
          ? JSON.parse(l).verb === verb && /^exit /.test(JSON.parse(l).msg)
          : l.includes(`: ${verb} `) && l.includes(": exit")
      ).length,
    stop,
    async [Symbol.asyncDispose]() {
      await stop("SIGKILL");
    },
  };
}
