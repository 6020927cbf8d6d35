/**
 * Network policy in the meta-plugin's verbs: the pod's labels from its annotations, its
 * table applied inside ADD (meta/policy/enforce.ts), and the other pods told when its
 * addresses come (ADD) or go (DEL).
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import type { MetaCall } from "./context.ts";
import { ffiApplier, parseLabels, POD_LABELS_ANNOTATION, podFromState } from "./policy/source.ts";
import type { PodState } from "./state.ts";

/**
 * The pod's labels when its annotations carry them (a standalone pod's `--labels`).
 *
 * @throws {CniError} code 7 naming the annotation when a label is not valid
 */
export function podLabelsOf(
  annotations: Record<string, string>,
): Record<string, string> | undefined {
  const text = annotations[POD_LABELS_ANNOTATION];
  if (text === undefined) return undefined;
  return parseLabels(text, `the annotation "${POD_LABELS_ANNOTATION}"`);
}

/**
 * ADD's policy step: the pod's table, when a policy selects it, applied in its netns.
 *
 * @throws {CniError} 101 when the table cannot be applied
 */
export async function enforcePolicy(call: MetaCall, state: PodState): Promise<void> {
  const pod = podFromState(state);
  if (!pod) return;
  // No source (no local policy file): nothing to import or apply; the mark stays, so a
  // trace reads the same with and without policies.
  const source = call.policy;
  if (!source) return void call.trace.mark("policy");
  // Imported only when some policy may select the pod (meta/policy/lazy.ts).
  const { enforceOnAdd } = await import("./policy/enforce.ts");
  const rules = await enforceOnAdd({
    source,
    pod,
    netns: state.netns,
    apply: call.kernel.applyPolicyTable ?? ffiApplier,
    log: call.log,
  });
  call.trace.mark("policy");
  if (rules) {
    const isolated = rules.interfaces.filter((i) => i.ingress || i.egress).map((i) => i.ifname);
    call.log.debug(`Network policy table applied (isolated: ${isolated.join(", ")})`);
  }
}

/** After ADD or DEL: the other pods whose tables name this pod's addresses are updated. */
export async function tellPeers(call: MetaCall, state: PodState, gone: boolean): Promise<void> {
  const source = call.policy;
  if (source && !source.podChanged) return;
  const pod = podFromState(state);
  if (!pod) return;
  try {
    await source?.podChanged?.(pod, gone);
    call.trace.mark("policy-peers");
  } catch (e) {
    call.log.warning(
      `Cannot update the network policy of the pods around "${pod.namespace}/${pod.name}": ${
        CniError.wrap(e, Code.Internal).message
      }`,
    );
  }
}
