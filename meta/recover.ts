/**
 * DEL past a corrupt entry in a pod's state (issue 26): an attachment whose recorded conf
 * no longer decodes (a state file damaged in place, a write torn by a disk fault) is
 * released through the current definition of its network, as a DEL without state would
 * release it, instead of stopping the DEL with code 6 and leaking its lease. Only when
 * that definition cannot be had either is the attachment reported, after every other one
 * was released.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { parseConfOrList } from "../conf/netconf.ts";
import { parseNetworkRef } from "./annotations.ts";
import { type MetaCall, planInput } from "./context.ts";
import { resolveClusterNetwork, type ResolvedNetwork } from "./networks.ts";
import type { AttachmentState, PodState } from "./state.ts";
import type { DelFailure } from "./teardown.ts";

/** A pod's state with what can be undone, and the entries nothing can undo. */
export interface RecoveredState {
  /** The state whose every attachment's conf decodes (current definitions put in). */
  state: PodState;
  /** Attachments whose conf does not decode and whose network cannot be resolved now. */
  lost: DelFailure[];
}

/**
 * Puts the current definition of its network into every attachment of `state` whose
 * recorded conf does not decode; the others are kept byte for byte.
 */
export async function withCurrentDefinitions(
  call: MetaCall,
  state: PodState,
): Promise<RecoveredState> {
  const broken = state.attachments.filter((a) => !decodes(a.confText));
  if (broken.length === 0) return { state, lost: [] };
  const lost: DelFailure[] = [];
  const current = new Map<AttachmentState, string>();
  for (const att of broken) {
    try {
      const net = await currentDefinition(call, att);
      current.set(att, net.confText);
      call.log.warning(
        `State of container "${state.containerId}": the recorded conf of network ` +
          `"${att.network}" ("${att.ifname}") does not decode; releasing it through its ` +
          `current definition`,
      );
    } catch (e) {
      const why = CniError.wrap(e).message;
      lost.push({
        att,
        error: new CniError(
          Code.DecodeFailure,
          `Cannot release network "${att.network}" ("${att.ifname}") of container ` +
            `"${state.containerId}": its recorded conf does not decode and its current ` +
            `definition cannot be had (${why})`,
        ),
      });
    }
  }
  const attachments = state.attachments.flatMap((a) => {
    if (decodes(a.confText)) return [a];
    const text = current.get(a);
    // What ADD ran is unknown: run the whole chain (each DEL is idempotent).
    return text === undefined ? [] : [{ ...a, confText: text, pluginsRan: undefined }];
  });
  return { state: { ...state, attachments }, lost };
}

function decodes(text: string): boolean {
  try {
    parseConfOrList(text);
    return true;
  } catch {
    return false;
  }
}

/** The network an attachment was made on, as the podplex conf and definitions say now. */
async function currentDefinition(call: MetaCall, att: AttachmentState): Promise<ResolvedNetwork> {
  const api = await call.kube().catch(() => undefined);
  const { resolver } = planInput(call, {}, api);
  if (att.isCluster) {
    const cluster = await resolveClusterNetwork(call.conf, resolver);
    if (cluster) return cluster;
  }
  const ref = parseNetworkRef(att.network, call.conf.defaultNetworkNamespace, "network");
  // Who may use a network is ADD's question: a DEL releases what the pod holds.
  return await resolver.resolve(ref, { skipIsolation: true });
}
