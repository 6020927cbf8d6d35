/**
 * Which pods' tables a change can alter, so that a change re-renders only those:
 *
 * - a policy: the pods it selects, before or after the change;
 * - a namespace's labels: the pods selected by a policy with a namespaceSelector peer (the
 *   simplest correct answer: any such peer may name that namespace now or have named it);
 * - a pod's labels, addresses or ports: the pod itself, and the pods selected by a policy
 *   one of whose peers could name the pod (before or after), or whose egress has a named
 *   port (that rule reaches every pod having the port).
 *
 * An ipBlock peer is drawn as its CIDR, so no pod's change alters it. Over-approximating is
 * safe: a pod whose table comes out the same is not written again.
 *
 * @module
 */
import { matches } from "../../meta/policy/selector.ts";
import type { Peer, PodView, Policy } from "../../meta/policy/types.ts";

/** Whether `p` selects `pod` (its namespace and podSelector). */
export function selects(p: Policy, pod: Pick<PodView, "namespace" | "labels">): boolean {
  return p.namespace === pod.namespace && matches(p.podSelector, pod.labels);
}

function peers(p: Policy): Peer[] {
  return [...p.ingress, ...p.egress].flatMap((r) => r.peers ?? []);
}

/** Whether `p` has a peer selecting namespaces by their labels. */
export function usesNamespaceLabels(p: Policy): boolean {
  return peers(p).some((x) => x.kind === "pods" && x.namespaceSelector !== undefined);
}

/** Whether an egress rule of `p` names a port (resolved on every destination pod). */
export function hasEgressNamedPort(p: Policy): boolean {
  return p.egress.some((r) => (r.ports ?? []).some((x) => typeof x.port === "string"));
}

/**
 * Whether a `pods` peer of `p` could name `pod`: its namespace is the policy's (podSelector
 * alone) or any (a namespaceSelector, whose labels are not looked at: any namespace may
 * match), and its labels match the podSelector (or there is none).
 */
export function peerMayName(p: Policy, pod: Pick<PodView, "namespace" | "labels">): boolean {
  return peers(p).some((x) =>
    x.kind === "pods" &&
    (x.namespaceSelector !== undefined || pod.namespace === p.namespace) &&
    (!x.podSelector || matches(x.podSelector, pod.labels))
  );
}

/** Whether a change of pod `before` → `after` (either absent) can alter a table `p` draws. */
export function podChangeTouches(p: Policy, before?: PodView, after?: PodView): boolean {
  if (hasEgressNamedPort(p)) return true;
  return (before !== undefined && peerMayName(p, before)) ||
    (after !== undefined && peerMayName(p, after));
}

/** Whether two pod views are the same for policy (labels, interfaces, ports). */
export function sameView(a?: PodView, b?: PodView): boolean {
  if (!a || !b) return a === b;
  return JSON.stringify([a.labels, a.interfaces, a.ports]) ===
    JSON.stringify([b.labels, b.interfaces, b.ports]);
}

/** Whether two label sets are equal. */
export function sameLabels(a: Record<string, string> = {}, b: Record<string, string> = {}) {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length &&
    ka.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}
