/**
 * The policy step of ADD: once the pod's attachments exist (its interfaces and addresses
 * known) and before ADD returns, a pod some policy selects gets its table in its netns, so
 * no packet reaches it before its rules do. A pod no policy selects costs the source's
 * answer only (no table, nftables never loaded).
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import type { Logger } from "../log.ts";
import { createOnly, renderPodTable } from "./render.ts";
import { type InterfaceRules, type PodRules, resolvePod } from "./resolve.ts";
import type { PolicySource, TableApplier } from "./source.ts";
import type { PodView } from "./types.ts";

/** Why a pod whose source has not synced yet is deny-all. */
export const UNSYNCED = "podplex: network policy not synced yet";

/**
 * The rules of a pod its source cannot judge yet: every interface isolated both ways,
 * nothing allowed but the node's own traffic on the cluster network (kubelet probes).
 */
export function denyAllRules(pod: PodView): PodRules {
  const closed = () => ({ isolatedBy: [UNSYNCED], allows: [], unresolved: [] });
  return {
    namespace: pod.namespace,
    name: pod.name,
    interfaces: pod.interfaces.map((i): InterfaceRules => ({
      ifname: i.ifname,
      network: i.network,
      cluster: i.cluster,
      ips: i.ips,
      nodeIps: i.cluster ? (i.nodeIps ?? []) : [],
      ingress: closed(),
      egress: closed(),
    })),
  };
}

/** Whether any interface of the pod is isolated in some direction (it then has a table). */
export function isIsolated(rules: PodRules): boolean {
  return rules.interfaces.some((i) => i.ingress || i.egress);
}

/** What the policy step needs of its ADD. */
export interface EnforceInput {
  source: PolicySource;
  /** The pod as the ADD made it (interfaces, addresses, labels). */
  pod: PodView;
  netns: string;
  apply: TableApplier;
  log: Logger;
}

/**
 * Resolves the pod's rules from its source and applies its table in its netns.
 *
 * @returns the rules applied, or undefined when the pod has no table
 * @throws {CniError} 101 naming the pod and netns when the table cannot be applied (the
 *   ADD then rolls back: the netns keeps no half-made pod)
 */
export async function enforceOnAdd(input: EnforceInput): Promise<PodRules | undefined> {
  const { pod } = input;
  const answer = await input.source.worldFor(pod);
  if (answer === undefined) return undefined;
  const rules = answer === "unsynced" ? denyAllRules(pod) : resolvePod(
    answer,
    answer.pods.find((p) => p.namespace === pod.namespace && p.name === pod.name) ?? pod,
  );
  if (!isIsolated(rules)) return undefined;
  for (const i of rules.interfaces) {
    for (const u of [...i.ingress?.unresolved ?? [], ...i.egress?.unresolved ?? []]) {
      input.log.warning(
        `Network policy of pod "${pod.namespace}/${pod.name}": ${u} names a port no ` +
          `container has; that port stays closed`,
      );
    }
  }
  try {
    await applyNew(input, renderPodTable(rules));
  } catch (e) {
    throw new CniError(
      Code.KernelFailure,
      `Cannot apply the network policy table of pod "${pod.namespace}/${pod.name}" in ` +
        `"${input.netns}": ${(e as Error).message}`,
    );
  }
  return rules;
}

/**
 * Applies a pod's first table: created when the netns has none (the cheap transaction,
 * render.ts's `createOnly`), else replaced whole. A create that fails for another reason
 * fails the replacement too, whose error is the one told.
 */
async function applyNew(input: EnforceInput, script: string): Promise<void> {
  const create = createOnly(script);
  if (create) {
    try {
      return await input.apply(input.netns, create);
    } catch { /* a table is there already (a second ADD into the netns): replace it */ }
  }
  await input.apply(input.netns, script);
}
