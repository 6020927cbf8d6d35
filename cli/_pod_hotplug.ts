/**
 * `podplex pod attach|detach NAME --networks LIST`: networks plugged into or out of a
 * standalone pod that is up, through the daemon's hot-plug code (meta/hotplug.ts) with no API
 * server. The pod's networks annotation (kept in its record, as `pod up` passed it) is
 * rewritten: its elements pinned to the interfaces they have, the listed ones added or taken
 * out; the hot-plug then makes the pod match it, and the record keeps what the pod has after.
 *
 * Calls on one pod take its lock (`<stateDir>/standalone/.<container>.lock`, flock), as
 * `pod down` does, so an attach and a down never interleave.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import {
  NETWORKS_ANNOTATION,
  type NetworkSelection,
  parseNetworksAnnotation,
  planPodNetworks,
} from "../meta/annotations.ts";
import { POD_ANNOTATIONS_ARG } from "../meta/context.ts";
import type { HotplugChange } from "../meta/hotplug.ts";
import {
  type CurrentAttachment,
  pinSelections,
  selectionJson,
  selectionNetwork,
  withoutSelections,
} from "../meta/hotplug_diff.ts";
import { createStateStore, type PodState } from "../meta/state.ts";
import type { StandaloneConfig } from "./_config.ts";
import { type PodRecord, podRecords } from "./_pods.ts";
import type { Root } from "./root.ts";
import { UsageError } from "./_args.ts";
import { err, out, printJson } from "./_output.ts";
import { podTable, type PodView } from "./_pod_view.ts";

/**
 * Holds the pod's lock while `fn` runs (an exclusive flock on its lock file, removed once
 * the pod is down).
 */
export async function withPodLock<T>(
  cfg: StandaloneConfig,
  containerId: string,
  fn: () => Promise<T>,
): Promise<T> {
  const records = podRecords(cfg.conf.stateDir);
  await Deno.mkdir(records.dir, { recursive: true, mode: 0o700 });
  const path = `${records.dir}/.${containerId}.lock`;
  using file = await Deno.open(path, {
    create: true,
    write: true,
    mode: 0o600,
  });
  await file.lock(true);
  try {
    return await fn();
  } finally {
    // A pod that is down (or was never up) leaves no lock file behind.
    if (!(await records.load(containerId).catch(() => null))) {
      await Deno.remove(path).catch(() => {});
    }
    await file.unlock().catch(() => {});
  }
}

/** What `attach` / `detach` did. */
export interface PodHotplugResult {
  changes: HotplugChange[];
  state: PodState | null;
}

/**
 * Adds (`attach`) or takes out (`detach`) the listed elements of the pod's networks and makes
 * the pod match; the record is saved with what the pod has after (failed changes excluded).
 *
 * @throws {CniError} 3 when the pod has no state, 7 for a bad list or an element to detach
 *   that the pod does not have (nothing is changed then)
 */
export async function podHotplug(
  root: Root,
  cfg: StandaloneConfig,
  rec: PodRecord,
  mode: "attach" | "detach",
  list: string,
): Promise<PodHotplugResult> {
  const state = await createStateStore(cfg.conf.stateDir).load(rec.containerId, rec.ifname);
  if (!state) {
    throw new CniError(
      Code.UnknownContainer,
      `Pod "${rec.namespace}/${rec.name}" has no state in "${cfg.conf.stateDir}"`,
    );
  }
  const annotations = { ...podAnnotations(rec) };
  const elements = planPodNetworks(annotations, rec.namespace, {
    defaultNetworkNamespace: cfg.conf.defaultNetworkNamespace,
  }).secondary;
  const pinned = pinSelections(currentOf(state), elements);
  const given = parseNetworksAnnotation(list, rec.namespace);
  if (given.length === 0) throw new CniError(Code.InvalidConfig, `"--networks" lists no network`);
  const wanted = mode === "attach" ? [...pinned, ...given] : withoutSelections(pinned, given);
  annotations[NETWORKS_ANNOTATION] = JSON.stringify(wanted.map(selectionJson));
  const outcome = await root.hotplug({ state, annotations });
  const after = outcome.state ? keptSelections(outcome.state, [...wanted, ...pinned]) : [];
  annotations[NETWORKS_ANNOTATION] = JSON.stringify(after.map(selectionJson));
  rec.capabilityArgs = { ...rec.capabilityArgs, [POD_ANNOTATIONS_ARG]: annotations };
  await podRecords(cfg.conf.stateDir).save(rec);
  return outcome;
}

function podAnnotations(rec: PodRecord): Record<string, string> {
  const a = rec.capabilityArgs[POD_ANNOTATIONS_ARG];
  return a && typeof a === "object" ? a as Record<string, string> : {};
}

function currentOf(state: PodState): CurrentAttachment[] {
  return state.attachments.map((a) => ({
    network: a.network,
    ifname: a.ifname,
    fixed: !a.selected,
  }));
}

/**
 * The element of each attachment made for the annotation, pinned to its interface: the
 * element asked for (the exact one, else an unnamed one of that network), else a bare one.
 */
function keptSelections(state: PodState, candidates: NetworkSelection[]): NetworkSelection[] {
  const used = new Set<NetworkSelection>();
  const out: NetworkSelection[] = [];
  for (const a of state.attachments.filter((x) => x.selected)) {
    const ofNet = candidates.filter((c) => !used.has(c) && selectionNetwork(c) === a.network);
    const hit = ofNet.find((c) => c.interface === a.ifname) ??
      ofNet.find((c) => c.interface === undefined);
    if (hit) used.add(hit);
    const [namespace, name] = a.network.split("/");
    out.push({ ...(hit ?? { namespace, name }), interface: a.ifname });
  }
  return out;
}

/** `pod attach` / `pod detach` of a pod that is up: prints the pod; exit 1 when a change failed. */
export async function hotplugCmd(
  root: Root,
  cfg: StandaloneConfig,
  rec: PodRecord,
  cmd: "attach" | "detach",
  f: { networks?: string; json?: boolean },
  viewOf: (cfg: StandaloneConfig, rec: PodRecord) => Promise<PodView>,
): Promise<number> {
  if (f.networks === undefined) throw new UsageError(`"pod ${cmd}" needs --networks LIST`);
  const { changes } = await podHotplug(root, cfg, rec, cmd, f.networks);
  const failed = changes.filter((c) => c.error);
  for (const c of changes) {
    const what = `${c.kind === "add" ? "attach" : "detach"} "${c.network}" as "${c.ifname}"`;
    if (c.error) err(`podplex pod: ${what} failed: ${c.error.message}\n`);
  }
  const view = await viewOf(cfg, rec);
  if (f.json) printJson({ ...view, changes: changes.map(changeJson) });
  else out(podTable([view], false));
  return failed.length ? 1 : 0;
}

function changeJson(c: HotplugChange): Record<string, unknown> {
  const j: Record<string, unknown> = { kind: c.kind, network: c.network, interface: c.ifname };
  if (c.error) j.error = { code: c.error.code, msg: c.error.message };
  return j;
}
