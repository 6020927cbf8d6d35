/**
 * The meta-plugin: the {@linkcode Plugin} for `type: "podplex"`. ADD lives in `add.ts`;
 * DEL, CHECK, GC and STATUS work from the state cache so they need neither the pod, nor the
 * API server, nor the netns.
 *
 * @module
 */
import { CniError, Code, joinErrors } from "../conf/errors.ts";
import { parseConfOrList } from "../conf/netconf.ts";
import { validAttachments } from "../conf/gc.ts";
import { convertResult } from "../conf/result.ts";
import type { Attachment, CniResult } from "../conf/types.ts";
import { inProcessRequest } from "../delegates/runner/builtin.ts";
import { runChain } from "../delegates/runner/chain.ts";
import type { InProcessRequest, Plugin, PluginRequest } from "../delegates/types.ts";
import { META_TYPE } from "./conf.ts";
import { metaAdd, recordFor } from "./add.ts";
import {
  type MetaCall,
  type MetaDeps,
  newPodState,
  openCall,
  planInput,
  runtimeAnnotations,
} from "./context.ts";
import { createResolver, resolveClusterNetwork, type ResolvedNetwork } from "./networks.ts";
import { planAttachments } from "./plan.ts";
import type { PodState } from "./state.ts";
import { attachmentChainOptions, delAttachments } from "./teardown.ts";

/**
 * Creates the meta-plugin (the plugin for `type: "podplex"`) with its edges.
 *
 * @example
 * ```ts
 * const plugin = createMetaPlugin({ registry: () => createRegistry({ builtins: BUILTINS }) });
 * const result = await plugin.invoke({ command: "ADD", conf, env });
 * ```
 */
export function createMetaPlugin(deps: MetaDeps): Plugin {
  async function call(req: InProcessRequest): Promise<CniResult | undefined> {
    const call = openCall(req, deps);
    const { containerId, ifname, netns } = req.env;
    call.log.debug(
      `${req.command} container="${containerId ?? ""}" ifname="${ifname ?? ""}" netns="${
        netns ?? ""
      }"`,
    );
    switch (req.command) {
      case "ADD":
        return await metaAdd(call);
      case "DEL":
        return void await metaDel(call);
      case "CHECK":
        return void await metaCheck(call);
      case "GC":
        return void await metaGc(call);
      case "STATUS":
        return void await metaStatus(call);
    }
  }
  return {
    type: META_TYPE,
    builtin: true,
    traits: TRAITS,
    call,
    async invoke(req: PluginRequest) {
      const inner = inProcessRequest(req);
      const result = await call(inner);
      return result && convertResult(result, inner.cniVersion);
    },
  };
}

/** Its errors name the network and interface at fault: the chain runner keeps them as is. */
const TRAITS = Object.freeze({ namesItsErrors: true });

/** The netns to use on DEL: the runtime's when given, else the one ADD recorded. */
function withNetns(call: MetaCall, state: PodState): PodState {
  return call.env.netns ? { ...state, netns: call.env.netns } : state;
}

/** The conf's cluster network, resolved from local definitions only (no pod involved). */
function clusterNetwork(call: MetaCall): Promise<ResolvedNetwork | undefined> {
  const { conf } = call;
  return resolveClusterNetwork(
    conf,
    createResolver({
      networksDir: conf.networksDir,
      confDir: conf.confDir,
      namespaceIsolation: false,
      globalNamespaces: [],
      podNamespace: conf.defaultNetworkNamespace,
    }),
  );
}

async function metaDel(call: MetaCall): Promise<void> {
  const { containerId, ifname } = call.env as { containerId: string; ifname: string };
  const state = await call.store.load(containerId, ifname);
  call.trace.mark("state-loaded");
  if (!state) return await delWithoutState(call);
  const errors = (await delAttachments(call, withNetns(call, state))).map((f) => f.error);
  // The state stays so that the runtime's retry can finish the job.
  if (errors.length) {
    throw joinErrors(errors, `DEL of container "${containerId}" left attachments behind`);
  }
  await call.store.remove(containerId, ifname);
  call.trace.mark("state-removed");
}

/**
 * DEL with no state (ADD never finished, or the state was lost): release what the conf
 * alone says the pod had, best-effort, and succeed.
 */
async function delWithoutState(call: MetaCall): Promise<void> {
  const { env } = call;
  let planned;
  try {
    planned = await planAttachments(planInput(call, runtimeAnnotations(call) ?? {}));
  } catch (e) {
    call.log.info(`DEL without state for "${env.containerId}": nothing to release (${e})`);
    return;
  }
  const state = newPodState(call);
  // The same records ADD would have written: the conf DEL runs is the conf ADD ran.
  state.attachments = planned.attachments.map((a) => recordFor(call, a));
  for (const f of await delAttachments(call, state)) call.log.warning(f.error.message);
}

async function metaCheck(call: MetaCall): Promise<void> {
  const { containerId, ifname } = call.env as { containerId: string; ifname: string };
  const state = await call.store.load(containerId, ifname);
  if (!state) {
    throw new CniError(
      Code.UnknownContainer,
      `No attachments of container "${containerId}" on "${ifname}" are known`,
    );
  }
  for (const att of state.attachments) {
    try {
      // The runtime's netns and container: CHECK is asked of the live pod.
      const opts = attachmentChainOptions(call, { containerId, netns: call.env.netns ?? "" }, att);
      await runChain(parseConfOrList(att.confText), "CHECK", opts);
    } catch (e) {
      throw CniError.wrap(
        e,
        Code.DelegateFailed,
        `CHECK of network "${att.network}" ("${att.ifname}")`,
      );
    }
  }
}

/**
 * GC: DELs every remembered attachment whose (container, ifname) is not valid, then
 * forwards GC to every network podplex knows, with the valid list expanded to the secondary
 * interfaces those containers have (else a delegate would release net1's address).
 */
async function metaGc(call: MetaCall): Promise<void> {
  const valid = validAttachments(call.conf.raw);
  const key = (c: string, i: string) => `${c}\u0000${i}`;
  const validKeys = new Set(valid.map((a) => key(a.containerID, a.ifname)));
  const errors: CniError[] = [];
  const expanded: Attachment[] = [...valid];
  const networks = new Map<string, string>();
  for (const state of await call.store.list()) {
    if (validKeys.has(key(state.containerId, state.ifname))) {
      for (const a of state.attachments) {
        expanded.push({ containerID: state.containerId, ifname: a.ifname });
        networks.set(a.confText, a.network);
      }
      continue;
    }
    const failures = await delAttachments(call, state);
    if (failures.length) errors.push(...failures.map((f) => f.error));
    else await call.store.remove(state.containerId, state.ifname);
  }
  const cluster = await clusterNetwork(call).catch(() => undefined);
  if (cluster) networks.set(cluster.confText, cluster.statusName);
  for (const [confText, name] of networks) {
    try {
      await runChain(parseConfOrList(confText), "GC", {
        env: { path: call.env.path },
        registry: call.registry,
        validAttachments: expanded,
      });
    } catch (e) {
      errors.push(CniError.wrap(e, Code.DelegateFailed, `GC of network "${name}"`));
    }
  }
  if (errors.length) throw joinErrors(errors, "GC failed");
}

/** STATUS: the readiness indicator file exists, and the cluster network's plugins are ready. */
async function metaStatus(call: MetaCall): Promise<void> {
  const file = call.conf.readinessIndicatorFile;
  if (file) {
    try {
      await Deno.stat(file);
    } catch {
      throw new CniError(
        Code.NotAvailable,
        `Not ready: the readiness indicator file "${file}" does not exist`,
      );
    }
  }
  const cluster = await clusterNetwork(call);
  if (!cluster) return;
  await runChain(parseConfOrList(cluster.confText), "STATUS", {
    env: { path: call.env.path },
    registry: call.registry,
  });
}
