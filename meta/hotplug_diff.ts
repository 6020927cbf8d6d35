/**
 * What a change of a running pod's networks annotation asks for: which of its attachments go,
 * which selection elements are plugged in and on which interface. A pure function of the
 * pod's attachments and the annotation's elements, so every rule is tested without a kernel.
 *
 * The rules (issue 22):
 * - an element is identified by (namespace, name, interface);
 * - an element that names no interface matches an attachment of the same network that no
 *   named element took; with one such attachment that is the one (multus-dynamic-networks-
 *   controller #63: its unnamed elements could not be unplugged); with several, the
 *   unnamed elements of that network take them in the order they were made;
 * - the cluster network and `defaultNetworks` (`fixed`) are never removed, and no element
 *   matches them (at ADD they are attached besides the annotation's elements);
 * - a new element without an interface gets the lowest `netN` that no attachment of the pod
 *   has (the ones removed by the same change included: their links may still exist if their
 *   DEL fails) and no element requests; existing attachments never change name;
 * - an element asking for an interface that a kept attachment holds is refused (the others
 *   are still applied); two elements asking for one interface make the annotation invalid.
 *
 * What a matched element asks beyond its identity (ips, mac, cni-args...) is not re-applied:
 * that would be a remove and an add, which the pod's author asks by naming another interface.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { NETWORKS_ANNOTATION, type NetworkSelection } from "./annotations.ts";

/** One attachment a pod has now, as the diff sees it. */
export interface CurrentAttachment {
  /** The network's statusName (`ns/name` for the annotation's networks). */
  network: string;
  /** Its pod interface. */
  ifname: string;
  /** The cluster network or one of `defaultNetworks`: never removed, never matched. */
  fixed: boolean;
}

/** An element to plug in, on the interface it gets. */
export interface PlannedAdd {
  selection: NetworkSelection;
  ifname: string;
}

/** An element that cannot be plugged in as asked, and why. */
export interface RefusedElement {
  selection: NetworkSelection;
  reason: string;
}

/** The difference between a pod's attachments and its annotation. */
export interface AttachmentDiff<A extends CurrentAttachment = CurrentAttachment> {
  /** Attachments no element asks for, last made first. */
  remove: A[];
  /** Elements to plug in, in annotation order. */
  add: PlannedAdd[];
  /** Elements refused (an interface held by a kept attachment). */
  refused: RefusedElement[];
}

/** `ns/name` of an element: the statusName its attachment gets. */
export function selectionNetwork(sel: NetworkSelection): string {
  return `${sel.namespace}/${sel.name}`;
}

/**
 * The changes that make `current` what `wanted` asks for (see the module doc for the rules).
 *
 * @param current the pod's attachments in the order they were made
 * @param wanted the annotation's elements in order
 * @throws {CniError} code 7 when two elements ask for the same interface
 */
export function diffAttachments<A extends CurrentAttachment>(
  current: readonly A[],
  wanted: readonly NetworkSelection[],
): AttachmentDiff<A> {
  requireDistinctInterfaces(wanted);
  const movable = current.filter((a) => !a.fixed);
  const matched = new Set<A>();
  const unmatched: NetworkSelection[] = [];
  // Named elements first: an exact match must not be taken by an unnamed element.
  const named = new Set(wanted.filter((s) => s.interface !== undefined));
  const byName = new Map<NetworkSelection, A>();
  for (const sel of named) {
    const hit = movable.find((a) =>
      !matched.has(a) && a.ifname === sel.interface && a.network === selectionNetwork(sel)
    );
    if (hit) {
      matched.add(hit);
      byName.set(sel, hit);
    }
  }
  for (const sel of wanted) {
    if (named.has(sel)) {
      if (!byName.has(sel)) unmatched.push(sel);
      continue;
    }
    const hit = movable.find((a) => !matched.has(a) && a.network === selectionNetwork(sel));
    if (hit) matched.add(hit);
    else unmatched.push(sel);
  }
  const remove = movable.filter((a) => !matched.has(a)).reverse();
  const removed = new Set<A>(remove);
  const held = new Map(
    current.filter((a) => !removed.has(a)).map((a) => [a.ifname, a.network] as const),
  );
  const requested = new Set(wanted.flatMap((s) => s.interface === undefined ? [] : [s.interface]));
  const everUsed = new Set(current.map((a) => a.ifname));
  const add: PlannedAdd[] = [];
  const refused: RefusedElement[] = [];
  for (const sel of unmatched) {
    if (sel.interface !== undefined) {
      const holder = held.get(sel.interface);
      if (holder !== undefined) {
        refused.push({
          selection: sel,
          reason: `Interface "${sel.interface}" is held by network "${holder}"`,
        });
        continue;
      }
      held.set(sel.interface, selectionNetwork(sel));
      add.push({ selection: sel, ifname: sel.interface });
      continue;
    }
    const ifname = lowestFreeNetN((n) => held.has(n) || requested.has(n) || everUsed.has(n));
    held.set(ifname, selectionNetwork(sel));
    add.push({ selection: sel, ifname });
  }
  return { remove, add, refused };
}

/** The lowest `netN` (N from 1) that `taken` does not hold. */
export function lowestFreeNetN(taken: (name: string) => boolean): string {
  for (let n = 1;; n++) {
    const name = `net${n}`;
    if (!taken(name)) return name;
  }
}

function requireDistinctInterfaces(wanted: readonly NetworkSelection[]): void {
  const seen = new Map<string, string>();
  for (const sel of wanted) {
    if (sel.interface === undefined) continue;
    const other = seen.get(sel.interface);
    if (other !== undefined) {
      throw new CniError(
        Code.InvalidConfig,
        `Invalid annotation "${NETWORKS_ANNOTATION}": interface "${sel.interface}" requested ` +
          `twice, by network "${other}" and by network "${selectionNetwork(sel)}"`,
      );
    }
    seen.set(sel.interface, selectionNetwork(sel));
  }
}

/** Whether a diff changes nothing and refuses nothing. */
export function isEmptyDiff(d: AttachmentDiff): boolean {
  return d.remove.length === 0 && d.add.length === 0 && d.refused.length === 0;
}

/** A selection element in Multus's JSON form (the networks annotation's list element). */
export function selectionJson(sel: NetworkSelection): Record<string, unknown> {
  const out: Record<string, unknown> = { name: sel.name, namespace: sel.namespace };
  if (sel.interface !== undefined) out.interface = sel.interface;
  if (sel.ips?.length) out.ips = sel.ips;
  if (sel.mac) out.mac = sel.mac;
  if (sel.defaultRoute?.length) out["default-route"] = sel.defaultRoute;
  if (sel.portMappings?.length) out.portMappings = sel.portMappings;
  if (sel.bandwidth) out.bandwidth = sel.bandwidth;
  if (sel.cniArgs) out["cni-args"] = sel.cniArgs;
  if (sel.infinibandGuid) out["infiniband-guid"] = sel.infinibandGuid;
  if (sel.deviceId) out.deviceID = sel.deviceId;
  return out;
}

/**
 * The elements with the interface each one's attachment has, as the diff matches them
 * (an element with no attachment stays as it is): a list whose every element names its
 * attachment exactly, so one of them can be taken out without guessing (`pod detach`).
 */
export function pinSelections(
  current: readonly CurrentAttachment[],
  wanted: readonly NetworkSelection[],
): NetworkSelection[] {
  const movable = current.filter((a) => !a.fixed);
  const taken = new Set<CurrentAttachment>();
  const out = wanted.map((s) => ({ ...s }));
  const take = (sel: NetworkSelection, exact: boolean) => {
    const hit = movable.find((a) =>
      !taken.has(a) && a.network === selectionNetwork(sel) &&
      (!exact || a.ifname === sel.interface)
    );
    if (!hit) return;
    taken.add(hit);
    sel.interface = hit.ifname;
  };
  for (const sel of out) if (sel.interface !== undefined) take(sel, true);
  for (const sel of out) if (sel.interface === undefined) take(sel, false);
  return out;
}

/**
 * `elements` without those `remove` names: an element of `remove` with an interface takes
 * out the element with that network and interface; one without, the one element of that
 * network (pin the list first, {@linkcode pinSelections}).
 *
 * @throws {CniError} code 7 naming the element when none matches, or several do
 */
export function withoutSelections(
  elements: readonly NetworkSelection[],
  remove: readonly NetworkSelection[],
): NetworkSelection[] {
  let out = [...elements];
  for (const r of remove) {
    const hits = out.filter((e) =>
      selectionNetwork(e) === selectionNetwork(r) &&
      (r.interface === undefined || e.interface === r.interface)
    );
    const what = `network "${selectionNetwork(r)}"` +
      (r.interface === undefined ? "" : ` on interface "${r.interface}"`);
    if (hits.length === 0) {
      throw new CniError(Code.InvalidConfig, `The pod has no ${what} to detach`);
    }
    if (hits.length > 1) {
      throw new CniError(
        Code.InvalidConfig,
        `The pod has ${what} on ${hits.map((h) => `"${h.interface}"`).join(", ")}: ` +
          `name the interface ("${selectionNetwork(r)}@IFNAME")`,
      );
    }
    out = out.filter((e) => e !== hits[0]);
  }
  return out;
}
