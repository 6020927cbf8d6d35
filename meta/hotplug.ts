/**
 * Hot-plug: networks added to or removed from a running pod. The pod's attachments (its
 * state) are brought in line with its networks annotation, one attachment at a time, through
 * the code a pod ADD and DEL run: the network resolved by the same resolver
 * (namespaceIsolation, local definitions, NADs), device IDs from kubelet's checkpoint, the
 * attachment's chain run by `addOne`, undone by `delAttachments`. The difference itself is
 * `hotplug_diff.ts`.
 *
 * Each attachment is written to the state, marked `pending`, before its ADD or DEL starts,
 * and the state is rewritten (atomically, `state.ts`) once it is done; a podplex killed in
 * between leaves the mark, and the next reconcile of that pod DELs the marked attachment and
 * forgets it before it diffs again: an attachment exists completely or not at all.
 *
 * A removal DELs the attachment alone: never by the pod's link group (that would take every
 * interface of the pod), each delegate deleting its own link. An addition joins the pod's
 * link group, so the pod's DEL still takes everything in one RCU grace period.
 *
 * The caller holds the pod's per-container lock (the daemon's scheduler key, the standalone
 * CLI's pod lock): a DEL of the sandbox never interleaves with a hot-plug.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import type { CniResult } from "../conf/types.ts";
import { lazyBytes } from "../delegates/runner/builtin.ts";
import type { InProcessRequest } from "../delegates/types.ts";
import { addOne, recordFor, runnableList } from "./add.ts";
import { planPodNetworks } from "./annotations.ts";
import { type MetaCall, type MetaDeps, openCall, planInput } from "./context.ts";
import { assignDeviceIds, heldDeviceIds } from "./device_id.ts";
import { type AttachmentDiff, diffAttachments, type PlannedAdd } from "./hotplug_diff.ts";
import { buildNetworkStatus } from "./network_status.ts";
import type { PlannedAttachment } from "./plan.ts";
import type { AttachmentState, PodState } from "./state.ts";
import { delAttachments } from "./teardown.ts";

/** One change made (or tried) to a running pod. */
export interface HotplugChange {
  /** Plugged in, or unplugged. */
  kind: "add" | "remove";
  /** The network's statusName (`ns/name`). */
  network: string;
  /** The pod interface. */
  ifname: string;
  /** Set when the change failed: nothing of it is left (an add), or it stays (a remove). */
  error?: CniError;
  /** An add's result (canonical). */
  result?: CniResult;
}

/** What a hot-plug of one pod is asked and told. */
export interface HotplugRequest {
  /**
   * The pod's state as it was found (its container, interface and kept conf say which pod
   * and where its state is; it is read again before anything is done).
   */
  state: PodState;
  /** The pod's annotations now. */
  annotations: Record<string, string>;
  /**
   * Called after each change, once the state on disk says it (the daemon PATCHes
   * network-status and emits an Event there).
   */
  onChange?: (change: HotplugChange, state: PodState) => Promise<void> | void;
}

/** What a hot-plug found and did. */
export interface HotplugOutcome {
  /** The pod's state after it (null: the pod has no state, e.g. it was DELeted). */
  state: PodState | null;
  /** Every change tried, in order (interrupted ones finished first). */
  changes: HotplugChange[];
}

/**
 * Brings a running pod's attachments in line with its annotations.
 *
 * @throws {CniError} code 7 when the annotation is invalid (nothing is changed then), when
 *   the pod's state predates hot-plug
 */
export async function hotplugPod(deps: MetaDeps, req: HotplugRequest): Promise<HotplugOutcome> {
  const call = callFor(req.state, deps);
  // Read again under the caller's lock: a DEL may have just removed it. Temp files a podplex
  // killed mid-write left go first (safe under the lock, as at the start of a DEL).
  await call.store.removeTemps(req.state.containerId, req.state.ifname);
  const state = await call.store.load(req.state.containerId, req.state.ifname);
  if (!state) return { state: null, changes: [] };
  const changes: HotplugChange[] = [];
  const report = async (c: HotplugChange) => {
    changes.push(c);
    await req.onChange?.(c, state);
  };
  const interrupted = state.attachments.filter((a) => a.pending);
  const cutAdd = interrupted.some((a) => a.pending === "add");
  for (const att of interrupted) await report(await finishInterrupted(call, state, att));
  if (cutAdd && state.linkGroup && state.netns) {
    // A link made under its temporary name before the kill carries the pod's group but no
    // attachment's name: no DEL finds it by name.
    const keep = state.attachments.map((a) => a.ifname);
    const strays = await call.kernel.deleteStrayLinks?.(state.netns, state.linkGroup, keep);
    if (strays?.length) call.log.info(`Deleted links left by a killed hot-plug: ${strays}`);
  }
  const diff = diffFor(call, state, req.annotations);
  for (const r of diff.refused) {
    await report({
      kind: "add",
      network: `${r.selection.namespace}/${r.selection.name}`,
      ifname: r.selection.interface ?? "",
      error: new CniError(Code.InvalidConfig, r.reason),
    });
  }
  for (const att of diff.remove) await report(await detachOne(call, state, att));
  for (const add of diff.add) await report(await attachOne(call, state, add, req.annotations));
  return { state, changes };
}

/**
 * The meta-plugin call a hot-plug of this pod runs as: its ADD's podplex conf, container,
 * netns, CNI_ARGS and CNI_PATH.
 *
 * @throws {CniError} code 7 when the state predates hot-plug (no conf was kept)
 */
export function callFor(state: PodState, deps: MetaDeps): MetaCall {
  const basis = state.hotplug;
  if (!basis) {
    throw new CniError(
      Code.InvalidConfig,
      `Container "${state.containerId}" was ADDed by a podplex that kept no hot-plug basis; ` +
        `its networks change only when it is recreated`,
    );
  }
  const conf = basis.conf;
  const req: InProcessRequest = {
    command: "ADD",
    conf,
    cniVersion: typeof conf.cniVersion === "string" ? conf.cniVersion : "1.1.0",
    env: {
      containerId: state.containerId,
      netns: state.netns,
      ifname: state.ifname,
      args: basis.args,
      path: basis.path,
    },
    bytes: lazyBytes(conf),
  };
  return openCall(req, deps);
}

/** The diff of the pod's attachments against its annotation (code 7 when it is invalid). */
function diffFor(
  call: MetaCall,
  state: PodState,
  annotations: Record<string, string>,
): Omit<AttachmentDiff, "remove"> & { remove: AttachmentState[] } {
  const podNamespace = call.pod.namespace ?? call.conf.defaultNetworkNamespace;
  const plan = planPodNetworks(annotations, podNamespace, {
    defaultNetworkNamespace: call.conf.defaultNetworkNamespace,
  });
  for (const w of plan.warnings) call.log.warning(w);
  const current = state.attachments.map((att) => ({
    network: att.network,
    ifname: att.ifname,
    fixed: !att.selected,
    att,
  }));
  const diff = diffAttachments(current, plan.secondary);
  return { ...diff, remove: diff.remove.map((c) => c.att) };
}

/**
 * Writes the state with network-status rebuilt from the attachments that are complete,
 * unless the pod's state is gone: a DEL that did not take this pod's lock (a per-call run
 * beside the daemon) removed it, and writing it would bring a DELeted pod back.
 *
 * @returns false when the state was gone (nothing written)
 */
async function saveState(call: MetaCall, state: PodState): Promise<boolean> {
  if (!(await call.store.load(state.containerId, state.ifname).catch(() => state))) return false;
  state.networkStatus = buildNetworkStatus(state.attachments.filter((a) => !a.pending));
  await call.store.save(state);
  return true;
}

/** The error of a change whose pod was DELeted under it. */
function podGone(state: PodState): CniError {
  return new CniError(
    Code.UnknownContainer,
    `Container "${state.containerId}" was DELeted while its hot-plug ran`,
  );
}

/** DELs one attachment alone (no link group: the pod's other links stay). */
async function delAlone(call: MetaCall, state: PodState, att: AttachmentState) {
  const alone = { ...state, linkGroup: undefined, attachments: [att] };
  return (await delAttachments(call, alone)).filter((f) =>
    // An ADD that failed on its own conf fails its DEL the same way and made nothing.
    !(att.pending === "add" &&
      (f.error.code === Code.InvalidConfig || f.error.code === Code.DecodeFailure))
  );
}

/** Removes `att` from the state once its DEL succeeded; else it stays, marked. */
async function forget(
  call: MetaCall,
  state: PodState,
  att: AttachmentState,
  change: HotplugChange,
): Promise<HotplugChange> {
  const failures = await delAlone(call, state, att);
  if (failures.length) {
    change.error = new CniError(
      failures[0].error.code,
      failures.map((f) => f.error.message).join("; "),
    );
    att.pending ??= "remove";
    await saveState(call, state).catch(() => {});
    return change;
  }
  state.attachments = state.attachments.filter((a) => a !== att);
  await saveState(call, state);
  return change;
}

/** An attachment a killed podplex left half made or half removed: DELeted and forgotten. */
function finishInterrupted(
  call: MetaCall,
  state: PodState,
  att: AttachmentState,
): Promise<HotplugChange> {
  call.log.info(`Finishing the interrupted hot-plug of "${att.network}" ("${att.ifname}")`);
  return forget(call, state, att, { kind: "remove", network: att.network, ifname: att.ifname });
}

async function detachOne(
  call: MetaCall,
  state: PodState,
  att: AttachmentState,
): Promise<HotplugChange> {
  att.pending = "remove";
  if (!(await saveState(call, state))) {
    return { kind: "remove", network: att.network, ifname: att.ifname, error: podGone(state) };
  }
  call.log.info(`Unplugging "${att.network}" ("${att.ifname}")`);
  return await forget(call, state, att, {
    kind: "remove",
    network: att.network,
    ifname: att.ifname,
  });
}

/**
 * Plugs one element in: resolved, checked and recorded before anything is made; on failure
 * its chain is DELeted and it is forgotten (the error names the network and interface).
 */
async function attachOne(
  call: MetaCall,
  state: PodState,
  add: PlannedAdd,
  annotations: Record<string, string>,
): Promise<HotplugChange> {
  const { selection: sel, ifname } = add;
  const change: HotplugChange = { kind: "add", network: `${sel.namespace}/${sel.name}`, ifname };
  let record: AttachmentState | undefined;
  let ran = false;
  try {
    if (state.attachments.some((a) => a.ifname === ifname)) {
      // A removal of this change that failed still holds the interface.
      throw new CniError(Code.InvalidConfig, `Interface "${ifname}" is still in use`);
    }
    if (sel.defaultRoute?.length) {
      throw new CniError(
        Code.InvalidConfig,
        `"default-route" is not applied to a running pod (network "${change.network}")`,
      );
    }
    const { resolver } = planInput(call, annotations, await call.kube());
    const network = await resolver.resolve({ namespace: sel.namespace, name: sel.name });
    change.network = network.statusName;
    const planned: PlannedAttachment = {
      network,
      ifname,
      isCluster: false,
      isDefault: false,
      selection: sel,
    };
    await assignDeviceIds(
      call,
      [planned],
      undefined,
      heldDeviceIds(state.attachments.map((a) => a.confText)),
    );
    record = recordFor(call, planned);
    const list = runnableList(record);
    record.pending = "add";
    state.attachments.push(record);
    // On disk before any side effect: a podplex killed during the ADD leaves the mark.
    if (!(await saveState(call, state))) {
      state.attachments.pop();
      record = undefined;
      throw podGone(state);
    }
    call.log.info(`Plugging "${network.statusName}" in as "${ifname}"`);
    ran = true;
    change.result = await addOne(call, record, list, planned, state.linkGroup);
    delete record.pending;
    if (!(await saveState(call, state))) {
      // The pod went while this ran: what this made goes too, and no state comes back.
      await delAlone(call, state, record);
      record = undefined;
      throw podGone(state);
    }
    return change;
  } catch (e) {
    // addOne's errors name the network and interface already.
    change.error = ran ? CniError.wrap(e, Code.DelegateFailed) : CniError.wrap(
      e,
      Code.DelegateFailed,
      `Cannot plug network "${change.network}" in as "${ifname}"`,
    );
    if (record && state.attachments.includes(record)) {
      const undo = await forget(call, state, record, {
        kind: "remove",
        network: change.network,
        ifname,
      });
      if (undo.error) {
        change.error = new CniError(
          change.error.code,
          change.error.message,
          `rollback also failed: ${undo.error.message}`,
        );
      }
    }
    delete change.result;
    return change;
  }
}
