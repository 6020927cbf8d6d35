/**
 * The composition root: the one place that builds podplex's object graph. The registry
 * (the built-in table plus exec), the meta-plugin with its edges (registry, Kubernetes
 * client, clock), and the resolver of a CNI call's top-level `type` are made here and passed
 * down; nothing below `cli/` builds them. One root lives as long as its process: a
 * per-call run makes it once, `podplex serve` keeps it for every call, so the loaded
 * delegates, the registries and the API client stay warm.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { BUILTINS } from "../delegates/catalog.ts";
import { createRegistry } from "../delegates/runner/registry.ts";
import type { BuiltinLoader, Plugin, PluginRegistry } from "../delegates/types.ts";
import type { ExecOptions } from "../delegates/runner/exec.ts";
import { META_TYPE, type PodplexConf } from "../meta/conf.ts";
import type { MetaDeps } from "../meta/context.ts";
import type { ClosableKubeClient, KubeClient } from "../clients/k8s/client.ts";
import type { WatchedKubeOptions } from "../clients/k8s/watch.ts";
import type { Resolver } from "./cni.ts";
import type { HotplugOutcome, HotplugRequest } from "../meta/hotplug.ts";

/** What the rest of `cli/` is given. */
export interface Root {
  /** The built-in delegates by type. */
  readonly builtins: Readonly<Record<string, BuiltinLoader>>;
  /** The meta-plugin (`type: "podplex"`), loaded when first asked for. */
  meta(): Promise<Plugin>;
  /**
   * Brings a running pod's attachments in line with its annotations (meta/hotplug.ts), with
   * the meta-plugin's edges. The caller holds the pod's per-container lock.
   */
  hotplug(req: HotplugRequest): Promise<HotplugOutcome>;
  /** The registry delegates are served from (one per `preferExternal` set, kept). */
  registry(preferExternal?: readonly string[]): PluginRegistry;
  /**
   * The plugin of a CNI call's top-level `type`: the meta-plugin for `podplex`; when run
   * through a symlink named after a built-in (`argv0`), that built-in whatever the conf's
   * type (an IPAM plugin gets its parent's conf); else the built-in of that type. podplex
   * never execs another binary for the top-level type.
   */
  resolver(argv0?: string): Resolver;
  /** Closes what the root holds open (the API clients). */
  close(): void;
  /** The API clients in use now, by kubeconfig (the daemon's metrics read their stats). */
  kubeClients(): KubeClient[];
  /** The API client of a conf's kubeconfig (the one its calls use; none without one). */
  kube(conf: PodplexConf): Promise<KubeClient | undefined>;
}

/** Options of {@linkcode createRoot}; tests replace the edges. */
export interface RootOptions {
  builtins?: Readonly<Record<string, BuiltinLoader>>;
  /** The meta-plugin's edges other than the registry (default: files, API from kubeconfig). */
  meta?: Omit<MetaDeps, "registry">;
  /** How external plugins are run (`podplex serve` in thick mode: the host's mount ns). */
  exec?: ExecOptions;
  /**
   * Keep this node's pods and the NADs by watch (`podplex serve`): the API clients read from
   * the watched caches (clients/k8s/watch.ts). Default: every read is a GET.
   */
  watch?: WatchedKubeOptions;
}

/**
 * Builds the object graph.
 *
 * @example
 * ```ts
 * const root = createRoot();
 * const code = await runCni(io, root.resolver(io.argv0));
 * ```
 */
export function createRoot(opts: RootOptions = {}): Root {
  const builtins = opts.builtins ?? BUILTINS;
  const registries = new Map<string, PluginRegistry>();
  const registry = (preferExternal: readonly string[] = []): PluginRegistry => {
    const key = [...preferExternal].sort().join("\u0000");
    let r = registries.get(key);
    if (!r) registries.set(key, r = createRegistry({ builtins, preferExternal, exec: opts.exec }));
    return r;
  };
  const kube = kubeClients(opts.watch);
  let meta: Promise<Plugin> | undefined;
  const metaDeps: MetaDeps = {
    kube: kube.get,
    ...opts.meta,
    registry: (conf: PodplexConf) => registry(conf.preferExternal),
  };
  // Loaded lazily: a VERSION probe or a built-in's own call does not pay for the meta-plugin.
  const loadMeta = () =>
    meta ??= import("../meta/plugin.ts").then((m) => m.createMetaPlugin(metaDeps));
  const isBuiltin = (type: string) => Object.hasOwn(builtins, type);
  return {
    builtins,
    meta: loadMeta,
    async hotplug(req) {
      return await (await import("../meta/hotplug.ts")).hotplugPod(metaDeps, req);
    },
    registry,
    resolver(argv0?: string): Resolver {
      return async (type: string): Promise<Plugin> => {
        if (argv0 && argv0 !== META_TYPE && isBuiltin(argv0)) {
          return await registry().get(argv0, []);
        }
        if (type === META_TYPE) return await loadMeta();
        if (isBuiltin(type)) return await registry().get(type, []);
        throw new CniError(Code.InvalidConfig, `podplex cannot serve plugin type "${type}"`);
      };
    },
    close: kube.close,
    kubeClients: kube.current,
    kube: kube.get,
  };
}

/** How long a replaced API client stays open for the calls still using it (ms). */
const RETIRE_AFTER_MS = 30_000;

/**
 * The Kubernetes client of a conf's `kubeconfig`: one per file, kept while the file is
 * unchanged, so a resident process reuses its connection; a rewritten kubeconfig (a
 * rotated token) gets a new client, and the old one is closed once its calls are done.
 */
function kubeClients(watch?: WatchedKubeOptions): {
  get: (conf: PodplexConf) => Promise<KubeClient | undefined>;
  close: () => void;
  current: () => KubeClient[];
} {
  const clients = new Map<string, { stamp: string; client: ClosableKubeClient }>();
  const close = () => {
    for (const { client } of clients.values()) client.close();
    clients.clear();
  };
  // One client per (kubeconfig, stamp), also when calls ask at once (a burst in the daemon):
  // a second client would keep a second pair of watches open forever.
  const making = new Map<string, { stamp: string; client: Promise<ClosableKubeClient> }>();
  const make = async (path: string, stamp: string): Promise<ClosableKubeClient> => {
    const { createKubeClient } = await import("../clients/k8s/client.ts");
    let client = createKubeClient({ kubeconfig: path });
    if (watch) client = (await import("../clients/k8s/watch.ts")).watchedKube(client, watch);
    const held = clients.get(path);
    if (held) Deno.unrefTimer(setTimeout(() => held.client.close(), RETIRE_AFTER_MS));
    clients.set(path, { stamp, client });
    making.delete(path);
    return client;
  };
  const get = async (conf: PodplexConf): Promise<KubeClient | undefined> => {
    const path = conf.kubeconfig;
    if (!path) return undefined;
    const info = await Deno.stat(path).catch(() => undefined);
    const stamp = `${info?.mtime?.getTime()}:${info?.ino}:${info?.size}`;
    const held = clients.get(path);
    if (held?.stamp === stamp) return held.client;
    let m = making.get(path);
    if (m?.stamp !== stamp) making.set(path, m = { stamp, client: make(path, stamp) });
    return await m.client;
  };
  return { get, close, current: () => [...clients.values()].map((c) => c.client) };
}
