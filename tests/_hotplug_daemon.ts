/**
 * A node for the hot-plug daemon tests: `bin/podplex serve --dynamic-networks` on a `ppd`
 * socket, with the fake API server (tests/k8s_fake_server.ts; no kube-apiserver can run
 * here) holding this node's pods, and CNI calls made as a runtime makes them: `bin/podplex`
 * exec'd with PODPLEX_SOCKET, which forwards them to the daemon through the shim.
 * Needs `deno task build`.
 *
 * @module
 */
import { type FakeKubeApi, startFakeKubeApi } from "./k8s_fake_server.ts";
import { type HotplugNetworks, hotplugNetworks } from "./_hotplug_rig.ts";

const BIN = new URL("../bin/podplex", import.meta.url).pathname;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** A running daemon. */
export interface HotplugDaemon {
  pid: number;
  log(): string;
  /** Signals it and waits for it to exit. */
  stop(signal?: Deno.Signal): Promise<void>;
}

/** The node: networks, the API server, the daemon and a runtime. */
export interface HotplugNode extends AsyncDisposable {
  f: HotplugNetworks;
  api: FakeKubeApi;
  socket: string;
  daemon: HotplugDaemon;
  /** The daemon's metrics text (curl of its metrics socket). */
  metrics(): Promise<string>;
  /** Starts the daemon again (after a stop or a kill). */
  restart(): Promise<HotplugDaemon>;
  /**
   * A CNI call of pod `name` (container `id`) in `netns`, through the daemon (`perCall`: run
   * by bin/podplex itself, as the shim does when the daemon cannot serve it).
   */
  cni(
    command: "ADD" | "DEL" | "CHECK",
    id: string,
    name: string,
    netns: string,
    perCall?: boolean,
  ): Promise<Out>;
}

/** What one call printed and returned. */
export interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

function kubeconfig(url: string): string {
  return `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${url}"}}]\n` +
    `users: [{name: u, user: {token: t}}]\n` +
    `contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`;
}

async function startDaemon(socket: string, stateDir: string): Promise<HotplugDaemon> {
  const child = new Deno.Command(BIN, {
    args: [
      "serve",
      "--socket",
      socket,
      "--node-name",
      "node-1",
      "--dynamic-networks",
      "--state-dir",
      stateDir,
      "--metrics-socket",
      `${socket}.metrics`,
    ],
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
  for (let i = 0; !log.includes("podplex serve: listening on"); i++) {
    if (i > 400) {
      await stop("SIGKILL");
      throw new Error(`podplex serve did not start: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { pid: child.pid, log: () => log, stop };
}

/**
 * Starts a node with `count` networks (10.163.<base+i>.0/24); network net-a is the cluster
 * network; the podplex conf names the kubeconfig of the fake API server.
 */
export async function hotplugNode(
  count: number,
  base: number,
  extraConf: Record<string, unknown> = {},
): Promise<HotplugNode> {
  const f = await hotplugNetworks(count, base);
  const api = await startFakeKubeApi({ token: "t" });
  await Deno.mkdir(`${f.dir}/bin`); // plugins of a test's own (CNI_PATH's first dir)
  const kc = `${f.dir}/kubeconfig`;
  await Deno.writeTextFile(kc, kubeconfig(api.url));
  const socket = `${f.dir}/ppd.sock`;
  const conf = JSON.stringify({
    cniVersion: "1.0.0",
    name: "podplex",
    type: "podplex",
    clusterNetwork: "default/net-a",
    networksDir: f.networksDir,
    stateDir: f.stateDir,
    kubeconfig: kc,
    ...extraConf,
  });
  const node: HotplugNode = {
    f,
    api,
    socket,
    daemon: await startDaemon(socket, f.stateDir),
    async metrics() {
      const out = await new Deno.Command("curl", {
        args: ["-sf", "--unix-socket", `${socket}.metrics`, "http://x/metrics"],
        stdout: "piped",
      }).output();
      if (!out.success) throw new Error("curl of the metrics failed");
      return dec.decode(out.stdout);
    },
    async restart() {
      await node.daemon.stop("SIGKILL");
      node.daemon = await startDaemon(socket, f.stateDir);
      return node.daemon;
    },
    async cni(command, id, name, netns, perCall) {
      const env = {
        PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
        CNI_COMMAND: command,
        CNI_CONTAINERID: id,
        CNI_NETNS: netns,
        CNI_IFNAME: "eth0",
        CNI_PATH: `${f.dir}/bin:/usr/lib/cni`,
        CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${name}`,
        // A socket that does not exist: bin/podplex runs the call itself.
        PODPLEX_SOCKET: perCall ? `${socket}.none` : socket,
      };
      const child = new Deno.Command(BIN, {
        env,
        clearEnv: true,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const w = child.stdin.getWriter();
      await w.write(enc.encode(conf));
      await w.close();
      const o = await child.output();
      return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
    },
    async [Symbol.asyncDispose]() {
      await node.daemon.stop("SIGKILL");
      await api.stop();
      await f[Symbol.asyncDispose]();
    },
  };
  return node;
}

/** Waits until `cond` holds (checked every 20 ms), at most `ms` (generous: a loaded machine). */
export async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  ms = 20_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The interfaces a pod's network-status (on the fake API server) lists. */
export function statusInterfaces(api: FakeKubeApi, name: string): string[] {
  const text = api.pods.get(`default/${name}`)?.annotations["k8s.v1.cni.cncf.io/network-status"];
  if (!text) return [];
  return (JSON.parse(text) as Array<{ interface?: string }>).map((e) => e.interface ?? "").sort();
}

/** `reason message` of the Events of pod `name`, in order. */
export function eventsOf(api: FakeKubeApi, name: string): string[] {
  return api.events.filter((e) => (e.involvedObject as { name?: string })?.name === name)
    .map((e) => `${e.reason} ${e.message}`);
}
