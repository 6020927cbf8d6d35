/**
 * SR-IOV and other device plugins, as Multus does it: a NAD annotated with
 * `k8s.v1.cni.cncf.io/resourceName` (e.g. `intel.com/sriov_netdevice`) attaches a device
 * that kubelet's device manager allocated to the pod. The device IDs come from kubelet's
 * checkpoint (`/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint`): its
 * `Data.PodDeviceEntries` list `{PodUID, ContainerName, ResourceName, DeviceIDs}`, where
 * DeviceIDs is a list (checkpoint v1) or, since kubelet 1.20, device IDs by NUMA node
 * (`{"0": [...], "-1": [...]}`). Attachments of the same resource take the pod's devices in
 * order; each gets `deviceID` (and `pciBusID`, which older SR-IOV CNIs read) in its conf, in
 * every plugin of a conflist, before the state records it, so DEL gets the same device.
 *
 * @module
 */
import { jsonErrorSummary, readRequiredTextSync } from "../conf/bounded_read.ts";
import { CniError, Code } from "../conf/errors.ts";
import { isObject } from "../conf/json.ts";
import type { MetaCall } from "./context.ts";
import type { PlannedAttachment } from "./plan.ts";

/** Where kubelet's device manager keeps its allocations. */
export const KUBELET_CHECKPOINT = "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint";

/**
 * The device IDs kubelet allocated to a pod, by resource name, in the checkpoint's order
 * (containers in order; NUMA nodes in ascending order within an entry).
 *
 * @throws {CniError} code 7 when the text is not a device manager checkpoint
 */
export function podDevices(checkpointText: string, podUid: string): Map<string, string[]> {
  let doc: unknown;
  try {
    doc = JSON.parse(checkpointText);
  } catch (e) {
    throw new CniError(
      Code.InvalidConfig,
      `Kubelet's device checkpoint is not JSON`,
      jsonErrorSummary(e),
    );
  }
  const entries = isObject(doc) && isObject(doc.Data) ? doc.Data.PodDeviceEntries : undefined;
  if (entries !== null && entries !== undefined && !Array.isArray(entries)) {
    throw new CniError(
      Code.InvalidConfig,
      `Kubelet's device checkpoint has no PodDeviceEntries list`,
    );
  }
  const out = new Map<string, string[]>();
  for (const e of entries ?? []) {
    if (!isObject(e) || e.PodUID !== podUid || typeof e.ResourceName !== "string") continue;
    const ids = Array.isArray(e.DeviceIDs)
      ? e.DeviceIDs
      : isObject(e.DeviceIDs)
      ? Object.keys(e.DeviceIDs).sort((a, b) => Number(a) - Number(b))
        .flatMap((numa) => (e.DeviceIDs as Record<string, unknown>)[numa] as unknown[])
      : [];
    const list = out.get(e.ResourceName) ?? [];
    for (const id of ids) if (typeof id === "string" && !list.includes(id)) list.push(id);
    out.set(e.ResourceName, list);
  }
  return out;
}

/**
 * The device IDs the confs of a pod's attachments already carry (a hot-plug must not give
 * one of them again).
 */
export function heldDeviceIds(confTexts: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const text of confTexts) {
    try {
      const conf = JSON.parse(text) as Record<string, unknown>;
      const targets = Array.isArray(conf.plugins) ? conf.plugins.filter(isObject) : [conf];
      for (const p of targets) if (typeof p.deviceID === "string") out.add(p.deviceID);
    } catch { /* a conf that does not parse holds no device we could give */ }
  }
  return out;
}

/** A conf or conflist text with `deviceID` and `pciBusID` set (in every plugin of a list). */
export function withDeviceId(confText: string, deviceId: string): string {
  const conf = JSON.parse(confText) as Record<string, unknown>;
  const targets = Array.isArray(conf.plugins) ? conf.plugins.filter(isObject) : [conf];
  for (const p of targets) {
    p.deviceID = deviceId;
    p.pciBusID = deviceId;
  }
  return JSON.stringify(conf);
}

/** The pod's UID: from the runtime (K8S_POD_UID), else from the API server. */
async function podUid(call: MetaCall): Promise<string | undefined> {
  if (call.pod.uid) return call.pod.uid;
  const { namespace, name } = call.pod;
  if (!namespace || !name) return undefined;
  return (await (await call.kube())?.getPod(namespace, name))?.uid;
}

/**
 * Gives each attachment whose network names a device plugin resource the next of the pod's
 * devices of that resource. Nothing is read when no attachment names one.
 *
 * @throws {CniError} code 7 naming the network when the pod's UID is unknown or it has no
 *   device of the resource left; code 5 when the checkpoint cannot be read
 */
export async function assignDeviceIds(
  call: MetaCall,
  attachments: PlannedAttachment[],
  checkpoint = KUBELET_CHECKPOINT,
  held: ReadonlySet<string> = new Set(),
): Promise<void> {
  const wanting = attachments.filter((a) => a.network.resourceName);
  if (wanting.length === 0) return;
  const uid = await podUid(call);
  let devices: Map<string, string[]> | undefined;
  for (const att of wanting) {
    const { resourceName, statusName } = att.network;
    if (!uid) {
      throw new CniError(
        Code.InvalidConfig,
        `Network "${statusName}" needs a device of "${resourceName}", but the pod's UID is ` +
          `unknown (no K8S_POD_UID and no pod in the API)`,
      );
    }
    // A node with many pods' devices can have a large checkpoint: 16 MiB is plenty.
    devices ??= podDevices(
      readRequiredTextSync(checkpoint, { what: "kubelet's device checkpoint", maxBytes: 16 << 20 }),
      uid,
    );
    const free = devices.get(resourceName!)?.filter((d) => !held.has(d));
    const id = free?.[0];
    if (id) devices.set(resourceName!, devices.get(resourceName!)!.filter((d) => d !== id));
    if (!id) {
      throw new CniError(
        Code.InvalidConfig,
        `Network "${statusName}" needs a device of "${resourceName}", but kubelet allocated ` +
          `pod "${uid}" none (left) in "${checkpoint}": does the pod request the resource?`,
      );
    }
    att.network = { ...att.network, confText: withDeviceId(att.network.confText, id) };
  }
}
