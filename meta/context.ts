/**
 * One call of the meta-plugin: its conf, environment, pod identity and the injected edges
 * (registry, Kubernetes client, state store, clock, log).
 *
 * @module
 */
import { parseCniArgs } from "../conf/cni_args.ts";
import { mark } from "../conf/trace.ts";
import { CniError, Code } from "../conf/errors.ts";
import { createRegistry } from "../delegates/runner/registry.ts";
import type { PluginEnv, PluginRegistry, PluginRequest } from "../delegates/types.ts";
import { parsePodplexConf, type PodplexConf } from "./conf.ts";
import type { ClosableKubeClient, KubeClient } from "./k8s.ts";
import { createLogger, type Logger } from "./log.ts";
import { createResolver } from "./networks.ts";
import type { PlanInput } from "./plan.ts";
import { createStateStore, type PodState, type StateStore } from "./state.ts";

/** The edges of the meta-plugin, injectable for tests and embedding. */
export interface MetaDeps {
  /** Serves delegate types (default: built-ins, else binaries in CNI_PATH). */
  registry?: (conf: PodplexConf) => PluginRegistry;
  /** The API client (default: one from `kubeconfig` when the conf sets it, else none). */
  kube?: (conf: PodplexConf) => Promise<KubeClient | undefined>;
  /** The state store (default: files in `stateDir`). */
  store?: (conf: PodplexConf) => StateStore;
  log?: (conf: PodplexConf) => Logger;
  now?: () => Date;
}

/** The pod a call is for, from CNI_ARGS (Kubernetes runtimes) or podman's pod name. */
export interface PodIdentity {
  namespace?: string;
  name?: string;
  uid?: string;
}

/** Everything one meta-plugin verb works with. */
export interface MetaCall {
  req: PluginRequest;
  conf: PodplexConf;
  env: PluginEnv;
  cniArgs: Map<string, string>;
  pod: PodIdentity;
  /** The runtime's capability args (podplex's own `runtimeConfig`). */
  runtimeArgs: Record<string, unknown>;
  registry: PluginRegistry;
  store: StateStore;
  log: Logger;
  now: () => Date;
  /** The API client, created on first use. */
  kube(): Promise<KubeClient | undefined>;
  /**
   * Releases what the call opened (the API client's TLS client, when podplex created it):
   * one process may serve many calls (`podplex serve`).
   */
  close(): Promise<void>;
}

const decoder = new TextDecoder();

/**
 * Parses a request to the meta-plugin into a {@linkcode MetaCall}.
 *
 * @throws {CniError} 6 when the conf is not JSON, 7 when it is not a valid podplex conf
 */
export function openCall(req: PluginRequest, deps: MetaDeps = {}): MetaCall {
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(req.conf));
  } catch (e) {
    throw new CniError(Code.DecodeFailure, "The podplex conf is not JSON", String(e));
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new CniError(Code.InvalidConfig, "The podplex conf is not a JSON object");
  }
  const conf = parsePodplexConf(raw as Record<string, unknown>);
  mark("conf");
  const cniArgs = parseCniArgs(req.env.args);
  let kube: Promise<KubeClient | undefined> | undefined;
  let owned: Promise<ClosableKubeClient | undefined> | undefined;
  return {
    req,
    conf,
    env: req.env,
    cniArgs,
    pod: {
      namespace: cniArgs.get("K8S_POD_NAMESPACE") || undefined,
      name: cniArgs.get("K8S_POD_NAME") || undefined,
      uid: cniArgs.get("K8S_POD_UID") || undefined,
    },
    runtimeArgs: conf.runtimeConfig ?? {},
    registry: deps.registry?.(conf) ?? createRegistry({ preferExternal: conf.preferExternal }),
    store: deps.store?.(conf) ?? createStateStore(conf.stateDir),
    log: deps.log?.(conf) ?? createLogger(conf.logLevel, conf.logFile),
    now: deps.now ?? (() => new Date()),
    kube() {
      if (!kube) {
        if (deps.kube) kube = deps.kube(conf);
        else kube = owned = defaultKube(conf);
      }
      return kube;
    },
    async close() {
      (await owned?.catch(() => undefined))?.close();
    },
  };
}

async function defaultKube(conf: PodplexConf): Promise<ClosableKubeClient | undefined> {
  if (!conf.kubeconfig) return undefined;
  const { createKubeClient } = await import("./k8s.ts");
  return createKubeClient({ kubeconfig: conf.kubeconfig });
}

/**
 * The inputs of `planAttachments` for this call: the pod's namespace (or the conf's default
 * when the runtime names none, as podman does) and a resolver over local definitions and,
 * when given, the API server.
 */
export function planInput(
  call: MetaCall,
  annotations: Record<string, string>,
  api?: KubeClient,
): PlanInput {
  const { conf, env } = call;
  const podNamespace = call.pod.namespace ?? conf.defaultNetworkNamespace;
  const resolver = createResolver({
    networksDir: conf.networksDir,
    confDir: conf.confDir,
    api,
    namespaceIsolation: conf.namespaceIsolation,
    globalNamespaces: conf.globalNamespaces,
    podNamespace,
  });
  return {
    conf,
    annotations,
    podNamespace,
    namespaceGiven: call.pod.namespace !== undefined,
    ifname: env.ifname!,
    resolver,
  };
}

/** An empty state record for this call's container, interface and pod. */
export function newPodState(call: MetaCall): PodState {
  const { env, pod } = call;
  const state: PodState = {
    version: 1,
    containerId: env.containerId!,
    netns: env.netns ?? "",
    ifname: env.ifname!,
    createdAt: call.now().toISOString(),
    attachments: [],
  };
  if (pod.namespace) state.podNamespace = pod.namespace;
  if (pod.name) state.podName = pod.name;
  if (pod.uid) state.podUid = pod.uid;
  return state;
}

/** The runtimeConfig key under which containerd passes the pod's annotations. */
export const POD_ANNOTATIONS_ARG = "io.kubernetes.cri.pod-annotations";

/** The pod's annotations when the runtime passed them (containerd), else undefined. */
export function runtimeAnnotations(call: MetaCall): Record<string, string> | undefined {
  const given = runtimeArg(call.runtimeArgs, POD_ANNOTATIONS_ARG);
  if (given && typeof given === "object" && !Array.isArray(given)) {
    return given as Record<string, string>;
  }
  return undefined;
}

/** A runtimeConfig value by key, matched case-insensitively (containerd's Go structs). */
export function runtimeArg(args: Record<string, unknown>, key: string): unknown {
  if (Object.hasOwn(args, key)) return args[key];
  const lower = key.toLowerCase();
  const k = Object.keys(args).find((k) => k.toLowerCase() === lower);
  return k === undefined ? undefined : args[k];
}

/**
 * A link group (IFLA_GROUP) for the container-side links of one (container, ifname): all of
 * them are deleted with one RTM_DELLINK on DEL. FNV-1a of the pair, kept clear of group 0
 * (the kernel's default) and of small numbers an admin might use.
 */
export function linkGroupFor(containerId: string, ifname: string): number {
  let h = 0x811c9dc5;
  for (const ch of `${containerId}/${ifname}`) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return 0x10000 + (h % 0x7ffe0000);
}
