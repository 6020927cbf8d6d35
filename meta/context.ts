/**
 * One call of the meta-plugin: its conf, environment, pod identity and the injected edges
 * (registry, Kubernetes client, state store, clock, log, kernel).
 *
 * @module
 */
import { parseCniArgs } from "../conf/cni_args.ts";
import { CniError, Code } from "../conf/errors.ts";
import { NO_TRACE, type Trace } from "../conf/trace.ts";
import type { CniResult } from "../conf/types.ts";
import type { InProcessRequest, PluginEnv, PluginRegistry } from "../delegates/types.ts";
import { parsePodplexConf, type PodplexConf } from "./conf.ts";
import type { KubeClient } from "../clients/k8s/client.ts";
import { createLogger, type Logger } from "./log.ts";
import { createResolver } from "./networks.ts";
import type { PlanInput, PlannedAttachment } from "./plan.ts";
import { createStateStore, type PodState, type StateStore } from "./state.ts";
import { fieldOf } from "../conf/json.ts";
import type { DefinitionFiles } from "./files.ts";
import { ffiApplier, type PolicySource, type TableApplier } from "./policy/source.ts";
// Not local.ts: a call on a node without local policies loads none of the policy code.
import { lazyLocalSource } from "./policy/lazy.ts";

/**
 * The kernel work the meta-plugin does itself (the delegates do the rest), behind an
 * interface so its logic is tested without root.
 */
export interface MetaKernel {
  /**
   * Fails unless `netns` is an existing network namespace (ADD checks before it writes its
   * state, so a bad CNI_NETNS leaves nothing behind).
   *
   * @throws {CniError} 3 when it does not exist, 8 when it is not a network namespace
   */
  requireNetns(netns: string): Promise<void>;
  /**
   * Deletes every link of link group `group` in the netns at `netns` with one RTM_DELLINK
   * (one RCU grace period for the whole pod). A netns that is gone is done.
   */
  deleteLinkGroup(netns: string, group: number): Promise<void>;
  /**
   * Deletes the links of link group `group` in the netns whose names are not in `keep` (a
   * hot-plug killed mid-creation left one under its temporary name).
   *
   * @returns the names deleted
   */
  deleteStrayLinks?(netns: string, group: number, keep: readonly string[]): Promise<string[]>;
  /**
   * Makes the pod's default routes what its `default-route` requests say, updating the
   * results in place.
   */
  applyDefaultRoutes(
    netns: string,
    attachments: PlannedAttachment[],
    results: CniResult[],
  ): Promise<void>;
  /**
   * Replaces a pod's network policy table in the netns at `netns` with one nftables
   * transaction (default: libnftables through `ffi/`).
   */
  applyPolicyTable?: TableApplier;
}

/** The edges of the meta-plugin, given by the composition root (`cli/`) or a test. */
export interface MetaDeps {
  /** Serves delegate types (built-ins, else binaries in CNI_PATH), per podplex conf. */
  registry: (conf: PodplexConf) => PluginRegistry;
  /** The API client for this conf (none when absent or when it gives undefined). */
  kube?: (conf: PodplexConf) => Promise<KubeClient | undefined>;
  /** The state store (default: files in `stateDir`). */
  store?: (conf: PodplexConf) => StateStore;
  /** The log of a call (default: `logFile` or stderr at `logLevel`). */
  log?: (conf: PodplexConf) => Logger;
  /** The clock (state timestamps). */
  now?: () => Date;
  /** Default: netlink through `ffi/`, loaded when first used. */
  kernel?: MetaKernel;
  /** How definitions and confs are read (default: directly; a daemon: cached). */
  files?: DefinitionFiles;
  /**
   * The network policy an ADD enforces (default: the conf's policiesDir and the pods of the
   * state store; a daemon gives the view of its watch).
   */
  policy?: (conf: PodplexConf, store: StateStore, log: Logger) => PolicySource | undefined;
}

/** The pod a call is for, from CNI_ARGS (Kubernetes runtimes) or podman's pod name. */
export interface PodIdentity {
  namespace?: string;
  name?: string;
  uid?: string;
}

/** Everything one meta-plugin verb works with. */
export interface MetaCall {
  req: InProcessRequest;
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
  kernel: MetaKernel;
  /** The call's timing marks. */
  trace: Trace;
  /** How definitions and confs are read. */
  files?: DefinitionFiles;
  /** The network policy ADD enforces (none: no policy at all). */
  policy?: PolicySource;
  /** The API client, created on first use. */
  kube(): Promise<KubeClient | undefined>;
}

/** The default kernel edge: netlink through `ffi/`, imported only when a verb needs it. */
const ffiKernel: MetaKernel = {
  async requireNetns(netns) {
    (await import("./kernel.ts")).requireNetns(netns);
  },
  async deleteLinkGroup(netns, group) {
    await (await import("./kernel.ts")).deleteLinkGroup(netns, group);
  },
  async deleteStrayLinks(netns, group, keep) {
    return (await import("./kernel.ts")).deleteStrayLinks(netns, group, keep);
  },
  async applyDefaultRoutes(netns, attachments, results) {
    (await import("./routes.ts")).applyDefaultRoutes(netns, attachments, results);
  },
  applyPolicyTable: ffiApplier,
};

/**
 * Opens one call of the meta-plugin on an already parsed conf.
 *
 * @throws {CniError} 7 when it is not a valid podplex conf
 */
export function openCall(req: InProcessRequest, deps: MetaDeps): MetaCall {
  const trace = req.trace ?? NO_TRACE;
  const conf = parsePodplexConf(req.conf, req.env.cwd);
  trace.mark("conf");
  const cniArgs = parseCniArgs(req.env.args);
  let kube: Promise<KubeClient | undefined> | undefined;
  const store = deps.store?.(conf) ?? createStateStore(conf.stateDir);
  const log = deps.log?.(conf) ?? createLogger(conf.logLevel, conf.logFile, {
    format: conf.logFormat,
    fields: {
      verb: req.command,
      containerId: req.env.containerId,
      pod: cniArgs.get("K8S_POD_NAME")
        ? `${cniArgs.get("K8S_POD_NAMESPACE") ?? ""}/${cniArgs.get("K8S_POD_NAME")}`
        : undefined,
    },
  });
  const kernel = deps.kernel ?? ffiKernel;
  // Asked for by ADD and DEL only (CHECK, GC, STATUS never look at the policiesDir).
  let policy: { source: PolicySource | undefined } | undefined;
  const policyOf = () =>
    deps.policy ? deps.policy(conf, store, log) : lazyLocalSource(
      conf.policiesDir,
      { states: () => store.list(), apply: kernel.applyPolicyTable ?? ffiApplier, log },
    );
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
    registry: deps.registry(conf),
    store,
    log,
    now: deps.now ?? (() => new Date()),
    kernel,
    trace,
    files: deps.files,
    get policy() {
      return (policy ??= { source: policyOf() }).source;
    },
    kube() {
      return kube ??= deps.kube?.(conf) ?? Promise.resolve(undefined);
    },
  };
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
    files: call.files,
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

/**
 * The pod's annotations when the runtime passed them (containerd), else undefined.
 *
 * containerd passes the sandbox's annotations as a Go `map[string]string`, so the value is a
 * JSON object, or `null` for a pod without annotations (a nil map): null means "not given".
 * Anything else (a string holding JSON, a list) is not what any runtime sends; ignoring it
 * would silently drop the pod's networks, so it is refused. The values are checked where
 * they are read (`planPodNetworks`, code 7 naming the annotation).
 *
 * @throws {CniError} code 7 naming the capability when the value is not an object
 */
export function runtimeAnnotations(call: MetaCall): Record<string, string> | undefined {
  const given = runtimeArg(call.runtimeArgs, POD_ANNOTATIONS_ARG);
  if (given === undefined || given === null) return undefined;
  if (typeof given !== "object" || Array.isArray(given)) {
    const got = Array.isArray(given) ? "a list" : `a ${typeof given}`;
    throw new CniError(
      Code.InvalidConfig,
      `Invalid runtimeConfig "${POD_ANNOTATIONS_ARG}": must be an object of annotation names ` +
        `to values (containerd passes the pod's annotations map), got ${got}`,
    );
  }
  return given as Record<string, string>;
}

/** A runtimeConfig value by key, matched case-insensitively (containerd's Go structs). */
export function runtimeArg(args: Record<string, unknown>, key: string): unknown {
  return fieldOf(args, key);
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
