/**
 * The Events the hot-plug controller gives a pod, with Multus's reasons and wording: Multus
 * says `Add net1 [10.1.1.2/24] from ns/net` (reason `AddedInterface`) when it plugs an
 * interface in at ADD; its dynamic-networks controller adds `RemovedInterface`, and the
 * Warnings `FailedAddingInterface` / `FailedRemovingInterface`. A refused annotation (it does
 * not parse, two elements ask for one interface) is a Warning `FailedAddingInterface` too.
 *
 * @module
 */
import type { CniError } from "../../conf/errors.ts";
import type { HotplugChange } from "../../meta/hotplug.ts";

/** The pod an Event is about. */
export interface EventPod {
  namespace: string;
  name: string;
  uid?: string;
}

/** Reason, type and message of the Event for one change (or a refused annotation). */
export function eventText(
  change: HotplugChange | CniError,
): { reason: string; type: "Normal" | "Warning"; message: string } {
  if (!("kind" in change)) {
    return {
      reason: "FailedAddingInterface",
      type: "Warning",
      message: `Cannot change the pod's networks: ${change.message}`,
    };
  }
  const { kind, network, ifname, error } = change;
  if (kind === "add") {
    if (error) {
      return {
        reason: "FailedAddingInterface",
        type: "Warning",
        message: `Cannot add ${ifname || "an interface"} from ${network}: ${error.message}`,
      };
    }
    return {
      reason: "AddedInterface",
      type: "Normal",
      message: `Add ${ifname} [${ipsOf(change).join(",")}] from ${network}`,
    };
  }
  if (error) {
    return {
      reason: "FailedRemovingInterface",
      type: "Warning",
      message: `Cannot remove ${ifname} from ${network}: ${error.message}`,
    };
  }
  return {
    reason: "RemovedInterface",
    type: "Normal",
    message: `Remove ${ifname} from ${network}`,
  };
}

/** The addresses (with prefix) an add's result gave the pod. */
function ipsOf(change: HotplugChange): string[] {
  const ips = (change.result?.ips ?? []) as Array<{ address?: string }>;
  return ips.flatMap((ip) => ip.address ? [ip.address] : []);
}

/** A core/v1 Event about `pod` for one change, from podplex on `node`. */
export function podEvent(
  pod: EventPod,
  change: HotplugChange | CniError,
  node: string,
  now: Date,
): Record<string, unknown> {
  const { reason, type, message } = eventText(change);
  const involved: Record<string, unknown> = {
    apiVersion: "v1",
    kind: "Pod",
    namespace: pod.namespace,
    name: pod.name,
  };
  if (pod.uid) involved.uid = pod.uid;
  const at = now.toISOString().replace(/\.\d{3}Z$/, "Z");
  return {
    apiVersion: "v1",
    kind: "Event",
    metadata: { generateName: `${pod.name}.`, namespace: pod.namespace },
    involvedObject: involved,
    reason,
    type,
    // The API server refuses a message over 1 KiB.
    message: message.length > 1024 ? `${message.slice(0, 1021)}...` : message,
    source: { component: "podplex", host: node },
    reportingComponent: "podplex",
    reportingInstance: node,
    firstTimestamp: at,
    lastTimestamp: at,
    count: 1,
  };
}
