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
import { withCurrentDefinitions } from "./recover.ts";
import { tellPeers } from "./policy_step.ts";

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
      files: call.files,
      namespaceIsolation: false,
      globalNamespaces: [],
      podNamespace: conf.defaultNetworkNamespace,
    }),
  );
}

async function metaDel(call: MetaCall): Promise<void> {
  const { containerId, ifname } = call.env as { containerId: string; ifname: string };
  // A podplex killed while writing this pod's state left a temp file: it goes now.
  await call.store.removeTemps(containerId, ifname);
  let state: PodState | null;
  try {
    state = await call.store.load(containerId, ifname);
  } catch (e) {
    call.log.warning(`${CniError.wrap(e).message}: releasing from the conf instead`);
    state = null;
  }
  call.trace.mark("state-loaded");
  if (!state) {
    await delWithoutState(call);
    // A corrupt or unreadable state file goes once what the conf names is released.
    await call.store.remove(containerId, ifname);
    return;
  }
  // An entry whose conf does not decode goes through its network's current definition.
  const { state: usable, lost } = await withCurrentDefinitions(call, withNetns(call, state));
  const failures = [...await delAttachments(call, usable), ...lost];
  const errors = failures.map((f) => f.error);
  // The state stays so that the runtime's retry can finish the job.
  if (errors.length) {
    throw joinErrors(errors, `DEL of container "${containerId}" left attachments behind`);
  }
  await call.store.remove(containerId, ifname);
  call.trace.mark("state-removed");
  await tellPeers(call, state, true);
}

/**
 * DEL with no state (ADD never finished, the state was lost or is corrupt): releases what
 * the conf alone says the pod had, each network on its own. A network that no longer
 * resolves is logged and skipped; a delegate's failure is returned (after every other
 * attachment was tried) so that the runtime retries, unless retrying cannot help (the
 * network's conf is invalid: code 6 or 7), which is logged.
 *
 * @throws {CniError} the delegates' failures, joined
 */
async function delWithoutState(call: MetaCall): Promise<void> {
  const id = call.env.containerId;
  let annotations: Record<string, string> = {};
  try {
    annotations = runtimeAnnotations(call) ?? {};
  } catch (e) {
    call.log.warning(`DEL without state for "${id}": annotations ignored (${e})`);
  }
  let planned;
  try {
    planned = await planAttachments({
      ...planInput(call, annotations),
      onUnresolved: (what, e) =>
        call.log.warning(`DEL without state for "${id}": ${what} skipped (${e.message})`),
    });
  } catch (e) {
    call.log.info(`DEL without state for "${id}": nothing to release (${e})`);
    return;
  }
  const state = newPodState(call);
  // The same records ADD would have written: the conf DEL runs is the conf ADD ran.
  state.attachments = planned.attachments.map((a) => recordFor(call, a));
  const errors: CniError[] = [];
  for (const { error } of await delAttachments(call, state)) {
    if (error.code === Code.InvalidConfig || error.code === Code.DecodeFailure) {
      call.log.warning(`DEL without state for "${id}": ${error.message}`);
    } else errors.push(error);
  }
  if (errors.length) {
    throw joinErrors(errors, `DEL of container "${id}" (no state) left attachments behind`);
  }
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
  // Temp files of a podplex killed mid-write; a minute old, so not an ADD's in flight.
  await call.store.removeTemps(undefined, undefined, 60_000);
  for (const state of await call.store.list()) {
    // Every network a pod had gets GC, so its delegates release what no valid pod holds.
    for (const a of state.attachments) networks.set(a.confText, a.network);
    if (validKeys.has(key(state.containerId, state.ifname))) {
      for (const a of state.attachments) {
        expanded.push({ containerID: state.containerId, ifname: a.ifname });
      }
      continue;
    }
    const failures = await delAttachments(call, state);
    if (failures.length) errors.push(...failures.map((f) => f.error));
    else await call.store.remove(state.containerId, state.ifname);
  }
  for (const broken of await call.store.listBroken()) {
    if (validKeys.has(key(broken.containerId, broken.ifname))) continue;
    // What the conf says such a pod had is released, then the file goes.
    const pod = { ...call, env: { ...call.env, ...broken, netns: "" } };
    try {
      await delWithoutState(pod);
      await call.store.remove(broken.containerId, broken.ifname);
    } catch (e) {
      errors.push(CniError.wrap(e, Code.DelegateFailed, `GC of "${broken.containerId}"`));
    }
  }
  const cluster = await clusterNetwork(call).catch(() => undefined);
  if (cluster) networks.set(cluster.confText, cluster.statusName);
  for (const [confText, name] of networks) {
    try {
      await runChain(parseConfOrList(confText), "GC", {
        env: { path: call.env.path, daemonSocket: call.env.daemonSocket },
        registry: call.registry,
        validAttachments: expanded,
        gcInProcessAnyVersion: true,
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
    env: { path: call.env.path, daemonSocket: call.env.daemonSocket },
    registry: call.registry,
  });
}
