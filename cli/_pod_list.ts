/**
 * `pod list` (every pod the state dir knows, with a health verdict) and `pod exec`.
 *
 * @module
 */
import { injectConf } from "../conf/netconf.ts";
import { toCanonical } from "../conf/result.ts";
import type { PluginEnv } from "../delegates/types.ts";
import { createStateStore, type PodState } from "../meta/state.ts";
import { interfacesOf, type PodView } from "./_pod_view.ts";
import { type PodRecord, podRecords } from "./_pods.ts";
import { cniPath, pathExists, type StandaloneConfig } from "./_config.ts";
import { podplexViaRunCni, runVerb } from "./_local_runtime.ts";
import type { Root } from "./root.ts";

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * CHECK of one pod: through the conflist with the cached result for a standalone pod (as a
 * runtime does); for a pod a runtime made, the meta-plugin's own CHECK, which works from
 * its state.
 */
async function checkOne(
  root: Root,
  cfg: StandaloneConfig,
  state: PodState,
  rec?: PodRecord,
): Promise<void> {
  const env: PluginEnv = {
    containerId: state.containerId,
    netns: state.netns,
    ifname: state.ifname,
    path: cniPath(),
  };
  if (rec) {
    env.args = rec.cniArgs;
    await runVerb(root, cfg, "CHECK", {
      env,
      capabilityArgs: rec.capabilityArgs,
      cachedResult: toCanonical(rec.result, cfg.list.cniVersion),
    });
    return;
  }
  const first = cfg.list.plugins[0];
  const conf = injectConf(first.bytes, { name: cfg.list.name, cniVersion: cfg.list.cniVersion });
  await podplexViaRunCni(root, () => {}).invoke({ command: "CHECK", conf, env });
}

/** Health of a pod: its netns exists and CHECK passes. */
async function healthOf(
  root: Root,
  cfg: StandaloneConfig,
  state: PodState,
  rec?: PodRecord,
): Promise<string> {
  if (!state.netns || !(await pathExists(state.netns))) {
    return `netns "${state.netns}" is gone`;
  }
  try {
    await checkOne(root, cfg, state, rec);
    return "ok";
  } catch (e) {
    return `CHECK failed: ${messageOf(e)}`;
  }
}

/**
 * Every pod of the state dir: those `pod up` made and those a runtime made, with their
 * interfaces and health.
 */
export async function listPods(
  root: Root,
  cfg: StandaloneConfig,
  health = true,
): Promise<PodView[]> {
  const records = await podRecords(cfg.conf.stateDir).list();
  const byId = new Map(records.map((r) => [r.containerId, r]));
  const states = await createStateStore(cfg.conf.stateDir, { warn: () => {} }).list();
  const pods: PodView[] = [];
  for (const state of states) {
    const rec = byId.get(state.containerId);
    byId.delete(state.containerId);
    pods.push({
      name: rec?.name ?? state.podName ?? state.containerId,
      namespace: rec?.namespace ?? state.podNamespace ?? "-",
      containerId: state.containerId,
      netns: state.netns,
      interfaces: interfacesOf(state, rec?.result),
      health: health ? await healthOf(root, cfg, state, rec) : undefined,
      standalone: !!rec,
    });
  }
  for (const rec of byId.values()) {
    pods.push({
      name: rec.name,
      namespace: rec.namespace,
      containerId: rec.containerId,
      netns: rec.netns,
      interfaces: interfacesOf(null, rec.result),
      health: health
        ? "no attachment state (the meta-plugin forgot this pod; 'pod down' it)"
        : undefined,
      standalone: true,
    });
  }
  return pods;
}
