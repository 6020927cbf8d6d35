/**
 * `podplex serve [--socket PATH]`: the resident podplex. It listens on a unix socket and runs
 * each CNI call that the shim (`bin/podplex-client.c`) forwards through the same dispatcher a
 * process would (`serve/call.ts`), so a call skips Deno's startup and cold JS. The wire
 * protocol, with its build-id handshake and readiness probe, is defined once in
 * `serve/protocol.ts`; calls of different pods run at once, within limits and a deadline
 * (`serve/gate.ts`); in thick mode the daemon serves the host from a container
 * (`serve/view.ts`). Startup is a list of small call sites: one line per service.
 *
 * @module
 */
import { createRoot, type Root, type RootOptions } from "./root.ts";
import { parseServeArgs, SERVE_USAGE, type ServeArgs } from "./serve/args.ts";
import { createFileCache, type FileCache } from "../meta/files.ts";
import { jsonLogLine } from "../meta/log.ts";
import type { WatchedKubeClient } from "../clients/k8s/watch.ts";
import { ServeMetrics, serveMetrics } from "./serve/metrics.ts";
import { checkHostPaths, type HostView, viewProblem } from "./serve/view.ts";
import { writeAllSync } from "../conf/io.ts";
import { PROTOCOL } from "./serve/protocol.ts";
import { ownNamespaces } from "./serve/call.ts";
import { type CallRecord, type Daemon, handle } from "./serve/daemon.ts";
import { CallScheduler, NotStarted } from "./serve/gate.ts";
import type { DynamicController } from "../controllers/dynamic/dynamic.ts";
import type { DaemonPolicySource } from "../controllers/policy/policy.ts";
import { FrameBudget } from "./serve/frames.ts";
import { listenPrivate, prepareSocketPath } from "./serve/socket.ts";
import { type Controller, type ControllerContext, systemClock } from "../controllers/controller.ts";
import { ControllerMetrics } from "../controllers/metrics.ts";

/** Where the daemon listens unless `--socket` (or the client's PODPLEX_SOCKET) says otherwise. */
export const DEFAULT_SOCKET = PROTOCOL.defaultSocket;

let jsonLog = false;

/** Logs one line per call on the daemon's stderr (what ran, how). */
function logCall(r: CallRecord): void {
  const ms = `${(r.seconds * 1000).toFixed(1)} ms`;
  const what = r.status === PROTOCOL.notServed
    ? `not served (${r.reason ?? r.reply.stderr})`
    : r.late
    ? `ended after its client was answered: status ${r.status} in ${ms}`
    : `exit ${r.status} in ${ms}`;
  if (jsonLog) {
    const pod = /K8S_POD_NAME=([^;]*)/.exec(r.call?.env.CNI_ARGS ?? "")?.[1];
    const ns = /K8S_POD_NAMESPACE=([^;]*)/.exec(r.call?.env.CNI_ARGS ?? "")?.[1];
    return void writeAllSync(
      Deno.stderr,
      new TextEncoder().encode(
        jsonLogLine(r.status === 0 || r.status === PROTOCOL.notServed ? "info" : "warning", what, {
          verb: r.verb,
          containerId: r.containerId,
          ifname: r.ifname,
          pod: pod ? `${ns ?? ""}/${pod}` : undefined,
          code: r.status === PROTOCOL.notServed ? undefined : r.code,
          ms: Math.round(r.seconds * 1e4) / 10,
          fallback: r.fallback,
          trace: r.trace,
        }) + "\n",
      ),
    );
  }
  say(`podplex serve: ${r.verb} ${r.containerId} ${r.ifname}: ${what}\n`);
  if (r.trace) say(`podplex serve: ${r.verb} ${r.containerId} ${r.ifname}: ${r.trace}\n`);
}

/**
 * The daemon's build id: the artifact writes it beside its bundle (`build-id`, the payload
 * hash the shim was compiled with); run from a checkout's sources it is the dev build's.
 */
export function readBuildId(): string {
  try {
    const dir = new URL(".", Deno.mainModule);
    const id = Deno.readTextFileSync(new URL("build-id", dir)).trim();
    return id || PROTOCOL.devBuild;
  } catch {
    return PROTOCOL.devBuild;
  }
}

/** A line of the daemon's own (as JSON with `--log-format json`). */
function say(text: string): void {
  if (jsonLog) {
    const msg = text.replace(/^podplex serve: /, "").replace(/\n$/, "");
    return void writeAllSync(
      Deno.stderr,
      new TextEncoder().encode(jsonLogLine("info", msg) + "\n"),
    );
  }
  writeAllSync(Deno.stderr, text);
}

/**
 * Runs the daemon until SIGINT or SIGTERM: then it stops accepting, finishes the calls it
 * accepted, removes the socket and returns 0.
 *
 * @param argv the arguments after `serve`
 * @returns the exit code (2 for bad arguments, 1 when the socket cannot be set up)
 */
export async function main(argv: string[], root: Root): Promise<number> {
  const args = parseServeArgs(argv, { NODE_NAME: Deno.env.get("NODE_NAME") });
  if ("help" in args) {
    say(SERVE_USAGE);
    return 0;
  }
  if ("error" in args) {
    say(`podplex serve: ${args.error}\n${SERVE_USAGE}`);
    return 2;
  }
  jsonLog = args.logFormat === "json";
  // From here on SIGTERM stops the daemon cleanly, also while it starts.
  const stopping = stopSignals();
  try {
    return await run(args, root, stopping.signal);
  } finally {
    stopping.remove();
  }
}

/** SIGINT and SIGTERM as an abort signal, from now until `remove()`. */
function stopSignals(): { signal: AbortSignal; remove(): void } {
  const ctl = new AbortController();
  const stop = () => ctl.abort();
  for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, stop);
  return {
    signal: ctl.signal,
    remove: () => {
      for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.removeSignalListener(sig, stop);
    },
  };
}

/** Starts the services, serves until `stop` aborts, then drains and cleans up. */
async function run(args: ServeArgs, root: Root, stop: AbortSignal): Promise<number> {
  const view = args.view && hostView(args.view);
  // What runs beside the call loop, started in order, closed in reverse: one line each.
  const services: Service[] = [];
  const cache = createFileCache();
  const daemonRoot = root = createRoot(daemonRootOptions(args, cache, view));
  services.push({ close: () => Promise.resolve(daemonRoot.close()) });
  const controllerMetrics = new ControllerMetrics();
  const base: ControllerContext = {
    clock: systemClock,
    log: (l) => say(`podplex serve: ${l}\n`),
    metrics: controllerMetrics,
  };
  let listener: Deno.UnixListener;
  try {
    await prepareSocketPath(args.socket);
    await root.meta(); // loaded before the first call, not by it
    for (const c of CONTROLLERS) if (c.on(args)) services.push(await c.start(args, base));
    listener = listenPrivate(args.socket);
  } catch (e) {
    say(`podplex serve: ${e instanceof Error ? e.message : e}\n`);
    await closeAll(services);
    return 1;
  }
  let ready = true;
  const build = readBuildId();
  const metrics = args.metrics ? new ServeMetrics(build) : undefined;
  const d: Daemon = {
    build,
    own: ownNamespaces(),
    root,
    scheduler: new CallScheduler(args.limits),
    deadlineMs: args.deadlineMs,
    frames: new FrameBudget(args.maxBufferedBytes),
    readDeadlineMs: args.readDeadlineMs,
    trace: args.trace,
    draining: false,
    observe(r) {
      logCall(r);
      metrics?.observe(r);
    },
    observeFrame(reason, why) {
      say(`podplex serve: frame not served (${why})\n`);
      metrics?.fallback(reason);
    },
    ready: () => ready && !d.draining,
  };
  if (view) d.viewProblem = (call) => viewProblem(view, call);
  const dynamic = args.dynamicNetworks ? await startHotplug(args, d, base) : undefined;
  if (metrics && args.metrics) {
    const files = cache;
    services.push(serveMetrics(args.metrics, () =>
      controllerMetrics.render() + metrics.render({
        inFlight: () => d.scheduler.running,
        queued: () => d.scheduler.waiting,
        files: () => ({ ...files.stats, size: files.size }),
        kube: () => daemonRoot.kubeClients().filter((k): k is WatchedKubeClient => "sizes" in k),
        hotplug: dynamic && (() => dynamic.stats),
      }), (l) => say(`podplex serve: ${l}\n`)));
  }
  await acceptUntilStopped(listener, d, `listening on ${args.socket} (build ${d.build})`, stop);
  ready = false;
  await dynamic?.close();
  await d.scheduler.drain();
  await closeAll(services);
  try {
    Deno.removeSync(args.socket); // Deno unlinks on close; this covers older behaviour
  } catch { /* gone already */ }
  say("podplex serve: stopped\n");
  return 0;
}

/** The host view of thick mode, with the mounts that are not the host's dropped (said why). */
function hostView(asked: HostView): HostView {
  const { view, dropped } = checkHostPaths(asked);
  for (const why of dropped) say(`podplex serve: host path ${why}: calls using it run per call\n`);
  say(`podplex serve: thick mode, host paths ${view.paths.join(", ") || "none"}\n`);
  return view;
}

/**
 * The daemon's own composition root: definitions and confs read through a cache, this
 * node's pods and the NADs watched (with a node name), and in thick mode external plugins
 * run in the host's mount namespace (serve/view.ts).
 */
function daemonRootOptions(args: ServeArgs, files: FileCache, view?: HostView): RootOptions {
  const opts: RootOptions = { meta: { files } };
  if (view?.mountNs) opts.exec = { mountNs: view.mountNs, hostRoot: view.root };
  // An ADD judges its pod in the policy controller's view (none before it started: the
  // daemon serves no call before its controllers are up).
  if (args.networkPolicy) opts.meta!.policy = () => policySource;
  if (args.nodeName) {
    opts.watch = { nodeName: args.nodeName, log: (l) => say(`podplex serve: ${l}\n`) };
  } else say("podplex serve: no node name (--node-name, NODE_NAME): pods are read by GET\n");
  return opts;
}

/**
 * The hot-plug controller (controllers/dynamic): pods' changes under the scheduler key their
 * CNI calls take. Started after the daemon is built (it needs the daemon's scheduler), not
 * from the table; closed before the daemon drains.
 */
async function startHotplug(
  args: ServeArgs,
  d: Daemon,
  base: ControllerContext,
): Promise<DynamicController> {
  const { startDynamicNetworks, LockBusy } = await import("../controllers/dynamic/dynamic.ts");
  say(`podplex serve: dynamic networks on, pods' states in ${args.stateDirs.join(", ")}\n`);
  return startDynamicNetworks({
    ...base,
    root: d.root,
    lock: (containerId, fn) =>
      d.scheduler.run({ key: containerId }, fn).catch((e) => {
        throw e instanceof NotStarted ? new LockBusy(e.message) : e;
      }),
    stateDirs: args.stateDirs,
    nodeName: args.nodeName!,
  });
}

/** Something the daemon runs beside its calls. */
interface Service {
  close(): Promise<void>;
}

async function closeAll(services: Service[]): Promise<void> {
  for (const s of services.reverse()) await s.close().catch(() => {});
}

/** What the policy controller answers an ADD, once it started (`--network-policy`). */
let policySource: DaemonPolicySource | undefined;

/** One controller of the daemon: the flag that turns it on, its context made from the flags. */
interface ControllerRow {
  flag: string;
  on(args: ServeArgs): boolean;
  start(args: ServeArgs, base: ControllerContext): Promise<Controller>;
}

/**
 * Starts a controller on settings that hold clients of their own (`close` releases them):
 * they are released when the controller closes, or at once when it fails to start.
 */
async function withSettings(
  settings: { close(): void },
  start: () => Promise<Controller>,
): Promise<Controller> {
  try {
    const c = await start();
    return {
      name: c.name,
      reconcile: () => c.reconcile(),
      close: () => c.close().finally(() => settings.close()),
    };
  } catch (e) {
    settings.close();
    throw e;
  }
}

/**
 * The daemon's controllers (controllers/), started in this order before the daemon listens,
 * closed in reverse after it drained. Each row turns flags into that controller's context;
 * the controller itself reads no flag. Imported when used, so a daemon without one loads none
 * of its code.
 */
const CONTROLLERS: ControllerRow[] = [
  {
    flag: "--dhcp-* (always on)", // the dhcp IPAM's lease keeper
    on: () => true,
    start: async (args, base) => {
      const { startDhcp } = await import("../controllers/dhcp/keeper_server.ts");
      const { parseKeeperFlags } = await import("./serve/dhcp_flags.ts");
      return startDhcp({ ...base, settings: parseKeeperFlags(args.dhcp, args.socket) });
    },
  },
  {
    flag: "--ipam-network FILE", // the cluster IPAM's block affinity lease + reconcile
    on: (args) => args.ipam !== undefined,
    start: async (args, base) => {
      const { startIpam } = await import("../controllers/ipam/ipam.ts");
      const s = await (await import("./ipam.ts")).ipamSettings(args.ipam!);
      return withSettings(s, () => startIpam({ ...base, ...s }));
    },
  },
  {
    flag: "--cluster-network FILE...", // node subnet lease + VTEP sync per cluster network
    on: (args) => args.cluster.length > 0,
    start: async (args, base) => {
      const { startOverlay } = await import("../controllers/overlay/overlay.ts");
      const { nodePodCidrs } = await import("./_node_pod_cidr.ts");
      const cidrs = nodePodCidrs(); // the Kubernetes clients of kubeSubnetMgr confs
      return withSettings(
        cidrs,
        () => startOverlay({ ...base, confFiles: args.cluster, podCidrs: cidrs.source }),
      );
    },
  },
  {
    flag: "(no --network-policy) [--config FILE]", // the local policies' files followed
    on: (args) => args.networkPolicy !== true,
    start: async (args, base) => {
      const { startLocalPolicy } = await import("../controllers/local_policy/local_policy.ts");
      const { localPolicySettings } = await import("./local_policy.ts");
      let s;
      try {
        s = await localPolicySettings(args.config, base.log);
      } catch (e) {
        if (args.config !== undefined) throw e; // named: the daemon does not start
        base.log(`local policy: off (${e instanceof Error ? e.message : e})`);
        return { name: "local-policy", reconcile: async () => {}, close: async () => {} };
      }
      return startLocalPolicy({ ...base, ...s });
    },
  },
  {
    flag: "--network-policy", // NetworkPolicy/MultiNetworkPolicy tables in this node's pods
    on: (args) => args.networkPolicy === true,
    start: async (args, base) => {
      const { startNetworkPolicy } = await import("../controllers/policy/policy.ts");
      const { policySettings } = await import("./network_policy.ts");
      const s = policySettings(args.kubeconfig, args.stateDirs, base.log);
      return withSettings(s, async () => {
        const c = await startNetworkPolicy({ ...base, ...s, nodeName: args.nodeName });
        policySource = c.source;
        return c;
      });
    },
  },
];

/**
 * Accepts connections until SIGINT or SIGTERM: then the daemon drains (a call that arrives
 * is "not served" and runs per call), stops accepting and waits for what it accepted.
 */
async function acceptUntilStopped(
  listener: Deno.UnixListener,
  d: Daemon,
  listening: string,
  stopSignal: AbortSignal,
): Promise<void> {
  const stop = () => {
    d.draining = true;
    try {
      listener.close();
    } catch { /* already closed */ }
  };
  say(`podplex serve: ${listening}\n`);
  if (stopSignal.aborted) stop(); // stopped while it started
  else stopSignal.addEventListener("abort", stop, { once: true });
  const pending = new Set<Promise<void>>();
  try {
    for await (const conn of listener) {
      const p = handle(conn, d).finally(() => pending.delete(p));
      pending.add(p);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.BadResource)) throw e;
  } finally {
    // A connection still sending its request must not hold the shutdown forever.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise((r) => timer = setTimeout(r, 5000));
    await Promise.race([Promise.allSettled(pending), grace]);
    clearTimeout(timer);
  }
}
