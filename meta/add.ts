/**
 * The meta-plugin's ADD: plan the pod's attachments, run each network's chain in order,
 * roll everything back on the first failure, remember what was done, report it.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { type ConfList, parseConfOrList } from "../conf/netconf.ts";
import type { CniResult } from "../conf/types.ts";
import { ChainAddError, runChain } from "../delegates/runner/chain.ts";
import type { PluginEnv } from "../delegates/types.ts";
import { META_TYPE } from "./conf.ts";
import {
  linkGroupFor,
  type MetaCall,
  newPodState,
  planInput,
  POD_ANNOTATIONS_ARG,
  runtimeAnnotations,
} from "./context.ts";
import { mergeResults } from "./merge.ts";
import { buildNetworkStatus } from "./network_status.ts";
import { NETWORK_STATUS_ANNOTATION } from "./annotations.ts";
import { capabilityArgsFor, cniArgsFor, planAttachments, type PlannedAttachment } from "./plan.ts";
import type { AttachmentState, HotplugBasis, PodState } from "./state.ts";
import { delAttachments } from "./teardown.ts";
import { awaitReadiness } from "./readiness.ts";
import { assignDeviceIds } from "./device_id.ts";
import { enforcePolicy, podLabelsOf, tellPeers } from "./policy_step.ts";

/**
 * Runs ADD for a pod.
 *
 * @returns the merged (or cluster) result, canonical (the caller prints it in the podplex
 *   conf's cniVersion)
 * @throws {CniError} the failing network's error, named, after every attachment made so far
 *   was rolled back
 */
export async function metaAdd(call: MetaCall): Promise<CniResult> {
  const { conf, env } = call;
  await awaitReadiness(conf.readinessIndicatorFile);
  const containerId = env.containerId!;
  const ifname = env.ifname!;
  if (await call.store.load(containerId, ifname)) {
    throw new CniError(
      Code.AlreadyExists,
      `Container "${containerId}" already has attachments on "${ifname}"; DEL it first`,
    );
  }
  const annotations = await podAnnotations(call);
  const plan = await planAttachments(planInput(call, annotations, await call.kube()));
  await assignDeviceIds(call, plan.attachments);
  call.trace.mark("plan");
  for (const w of plan.warnings) call.log.warning(w);
  call.log.debug(
    `Plan: ${plan.attachments.map((a) => `${a.network.statusName}@${a.ifname}`).join(", ")}`,
  );

  const state = newPodState(call);
  state.hotplug = hotplugBasis(call);
  state.linkGroup = linkGroupFor(containerId, ifname);
  const labels = podLabelsOf(annotations);
  if (labels) state.podLabels = labels;
  state.attachments = plan.attachments.map((att) => recordFor(call, att));
  const lists = state.attachments.map(runnableList);
  await call.kernel.requireNetns(env.netns!);
  // Written before any side effect: a podplex killed mid-ADD leaves a state from which the
  // runtime's DEL releases whatever was made (DELs of attachments never made are no-ops).
  await call.store.save(state);
  const results: CniResult[] = [];
  try {
    for (const [i, att] of plan.attachments.entries()) {
      stopIfCancelled(call);
      results.push(await addOne(call, state.attachments[i], lists[i], att, state.linkGroup));
      if (call.trace.on) call.trace.mark(`att:${i}:end`);
    }
    stopIfCancelled(call);
    if (plan.attachments.some((a) => a.selection?.defaultRoute?.length)) {
      // Updates the results in place: they are the objects the state records hold.
      await call.kernel.applyDefaultRoutes(env.netns!, plan.attachments, results);
    }
    state.networkStatus = buildNetworkStatus(state.attachments);
    // The pod's table is in its netns before the runtime learns the pod is up.
    await enforcePolicy(call, state);
    await call.store.save(state);
    call.trace.mark("state");
  } catch (e) {
    throw await rollBack(call, state, results.length, e);
  }
  await tellPeers(call, state, false);
  await publishNetworkStatus(call, state);
  return mergeResults(
    plan.attachments.map((a, i) => ({
      isCluster: a.isCluster,
      isDefault: a.isDefault,
      result: results[i],
    })),
    conf.resultMode,
    conf.cniVersion,
  );
}

/**
 * Stops an ADD whose client no longer waits (the daemon answered it 11 at its deadline, or
 * it went away): between attachments and after the last, so the rollback undoes whole
 * chains and a pod whose runtime was told 11 is not left half made.
 *
 * @throws {CniError} 11 naming why
 */
function stopIfCancelled(call: MetaCall): void {
  const signal = call.req.signal;
  if (!signal?.aborted) return;
  throw new CniError(
    Code.TryAgainLater,
    `ADD was cancelled: ${signal.reason ?? "no reason given"}`,
  );
}

/**
 * An attachment's conf, parsed once for the whole ADD; refused, before anything is made,
 * when it does not parse or when its chain is podplex itself (exec'd from CNI_PATH it would
 * be podplex again, ADDing the pod forever).
 *
 * @throws {CniError} code 6/7 naming the network
 */
export function runnableList(r: AttachmentState): ConfList {
  try {
    const list = parseConfOrList(r.confText);
    if (list.plugins.some((p) => p.type === META_TYPE)) {
      throw new CniError(Code.InvalidConfig, `The network delegates to "${META_TYPE}" itself`);
    }
    return list;
  } catch (e) {
    throw CniError.wrap(e, Code.InvalidConfig, `Network "${r.network}" (interface "${r.ifname}")`);
  }
}

/** What a later hot-plug of this pod runs with: this ADD's conf, CNI_PATH and CNI_ARGS. */
function hotplugBasis(call: MetaCall): HotplugBasis {
  const { prevResult: _p, runtimeConfig: _r, ...conf } = call.req.conf;
  const basis: HotplugBasis = { conf, path: [...call.env.path] };
  if (call.env.args !== undefined) basis.args = call.env.args;
  return basis;
}

/** What the state remembers of one attachment before it runs: its exact conf and args. */
export function recordFor(call: MetaCall, att: PlannedAttachment): AttachmentState {
  const record: AttachmentState = {
    network: att.network.statusName,
    ifname: att.ifname,
    isCluster: att.isCluster,
    isDefault: att.isDefault,
    confText: withCniArgs(att.network.confText, att.selection?.cniArgs),
  };
  if (att.selection) record.selected = true;
  const cniArgs = cniArgsFor(att, call.env.args);
  if (cniArgs !== undefined) record.cniArgs = cniArgs;
  const capabilityArgs = capabilityArgsFor(att, call.runtimeArgs);
  if (Object.keys(capabilityArgs).length) record.capabilityArgs = capabilityArgs;
  return record;
}

/** Runs one attachment's chain and keeps its result in `record`. */
export async function addOne(
  call: MetaCall,
  record: AttachmentState,
  list: ConfList,
  att: PlannedAttachment,
  linkGroup?: number,
): Promise<CniResult> {
  try {
    const env: PluginEnv = { ...call.env, ifname: att.ifname, args: record.cniArgs };
    const { result } = await runChain(list, "ADD", {
      env,
      registry: call.registry,
      capabilityArgs: record.capabilityArgs ?? {},
      linkGroup,
    });
    record.result = result as unknown as Record<string, unknown>;
    return result!;
  } catch (e) {
    if (e instanceof ChainAddError && e.ran < list.plugins.length) record.pluginsRan = e.ran;
    throw CniError.wrap(
      e,
      Code.DelegateFailed,
      `Network "${att.network.statusName}" (interface "${att.ifname}") failed`,
    );
  }
}

/**
 * Undoes a failed ADD: DELs the attachments that were tried (`done` finished, plus the one
 * that failed) in reverse, then forgets the pod. Returns the error to throw: the ADD's,
 * with whatever the rollback could not release in its details (the state then stays, so the
 * runtime's DEL can finish the job).
 */
async function rollBack(
  call: MetaCall,
  state: PodState,
  done: number,
  e: unknown,
): Promise<CniError> {
  const err = CniError.wrap(e);
  const { containerId, ifname } = state;
  const network = state.attachments[done]?.network;
  call.log.with({ network }).warning(
    `ADD of "${containerId}" failed, rolling back: ${err.message}`,
  );
  // What ran is on disk before the undo starts: a podplex killed during the rollback leaves a
  // state from which the runtime's DEL undoes exactly that.
  await call.store.save(state).catch(() => {});
  const tried = { ...state, attachments: state.attachments.slice(0, done + 1) };
  const failed = tried.attachments[done];
  // The attachment whose ADD failed on its own conf (a delegate refusing a field) fails its
  // DEL the same way and made nothing: only that repeat is not worth reporting.
  const undo = (await delAttachments(call, tried)).filter((f) =>
    !(f.att === failed &&
      (f.error.code === Code.InvalidConfig || f.error.code === Code.DecodeFailure))
  ).map((f) => f.error);
  for (const u of undo) call.log.error(`Rollback of "${containerId}": ${u.message}`);
  if (undo.length) {
    return new CniError(err.code, err.message, joinDetails(err.details, undo), { cause: e });
  }
  await call.store.remove(containerId, ifname);
  return err;
}

/** The pod's annotations: from the runtime (containerd), else the API server, else none. */
async function podAnnotations(call: MetaCall): Promise<Record<string, string>> {
  const given = runtimeAnnotations(call);
  if (given) return given;
  const { namespace, name } = call.pod;
  if (!namespace || !name) return {};
  const kube = await call.kube();
  if (!kube) {
    warnBlind(call, `${namespace}/${name}`);
    return {};
  }
  const pod = await kube.getPod(namespace, name, call.pod.uid);
  if (!pod) {
    call.log.warning(`Pod "${namespace}/${name}" not found in the API; using no annotations`);
    return {};
  }
  if (call.pod.uid && pod.uid && pod.uid !== call.pod.uid) {
    throw new CniError(
      Code.TryAgainLater,
      `Pod "${namespace}/${name}" in the API has UID "${pod.uid}", not "${call.pod.uid}"`,
    );
  }
  return pod.annotations;
}

/**
 * A Kubernetes pod whose annotations podplex has no way to read: the runtime passes them
 * only for a declared capability, and there is no API server to ask. Its networks
 * annotation would be ignored without a word (Multus is silent here: containerd users then
 * see only eth0), so say which setting is missing.
 */
function warnBlind(call: MetaCall, pod: string): void {
  if (call.conf.capabilities?.[POD_ANNOTATIONS_ARG] === true) return; // declared: none given
  call.log.warning(
    `Cannot read the annotations of pod "${pod}": the podplex conf declares no ` +
      `"${POD_ANNOTATIONS_ARG}" capability and names no kubeconfig; the pod gets only its ` +
      `cluster network and defaultNetworks (add "capabilities": {"${POD_ANNOTATIONS_ARG}": true})`,
  );
}

/** Writes network-status to the pod when an API server is configured; failures only warn. */
async function publishNetworkStatus(call: MetaCall, state: PodState): Promise<void> {
  const { namespace, name } = call.pod;
  if (!namespace || !name || !call.conf.kubeconfig) return;
  try {
    const kube = await call.kube();
    await kube?.patchPodAnnotations(namespace, name, {
      [NETWORK_STATUS_ANNOTATION]: JSON.stringify(state.networkStatus ?? [], null, 2),
    });
  } catch (e) {
    call.log.warning(`Cannot write network-status to pod "${namespace}/${name}": ${e}`);
  }
}

/**
 * A network's conf text with the pod's `cni-args` merged into every plugin's `args.cni`
 * (Multus's behaviour). Unchanged text when there are none.
 */
export function withCniArgs(confText: string, cniArgs?: Record<string, unknown>): string {
  if (!cniArgs || Object.keys(cniArgs).length === 0) return confText;
  const obj = JSON.parse(confText) as Record<string, unknown>;
  const targets = Array.isArray(obj.plugins) ? obj.plugins as Record<string, unknown>[] : [obj];
  for (const p of targets) {
    const args = (p.args && typeof p.args === "object" ? p.args : {}) as Record<string, unknown>;
    const cni = (args.cni && typeof args.cni === "object" ? args.cni : {}) as Record<
      string,
      unknown
    >;
    p.args = { ...args, cni: { ...cni, ...cniArgs } };
  }
  return JSON.stringify(obj);
}

function joinDetails(details: string | undefined, undo: CniError[]): string {
  const rollback = `rollback also failed: ${undo.map((e) => e.message).join("; ")}`;
  return details ? `${details}; ${rollback}` : rollback;
}
