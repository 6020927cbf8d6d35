/**
 * Merging the results of a pod's attachments into the one result the runtime gets.
 *
 * @module
 */
import type { CniResult } from "../conf/types.ts";

/** One attachment's outcome, as the merge needs it. */
export interface AttachmentOutcome {
  isCluster: boolean;
  isDefault: boolean;
  result: CniResult;
}

/**
 * `merged` (podplex's default): every interface of every attachment, IPs re-indexed to them,
 * the routes of the attachments that carry a default route (several when a pod asks for
 * its IPv4 and IPv6 default routes over different networks), DNS of the first of them.
 * `cluster` (Multus's behaviour): the cluster network's result alone (else the first's).
 */
export function mergeResults(
  outcomes: AttachmentOutcome[],
  mode: "merged" | "cluster",
  cniVersion: string,
): CniResult {
  if (outcomes.length === 0) return { cniVersion };
  const main = outcomes.find((o) => o.isDefault) ?? outcomes.find((o) => o.isCluster) ??
    outcomes[0];
  if (mode === "cluster") {
    const cluster = outcomes.find((o) => o.isCluster) ?? outcomes[0];
    return { ...cluster.result, cniVersion };
  }
  const merged: CniResult = { cniVersion, interfaces: [], ips: [] };
  for (const { result } of outcomes) {
    const offset = merged.interfaces!.length;
    merged.interfaces!.push(...(result.interfaces ?? []));
    for (const ip of result.ips ?? []) {
      merged.ips!.push(
        ip.interface === undefined ? { ...ip } : { ...ip, interface: ip.interface + offset },
      );
    }
  }
  const carriers = outcomes.filter((o) => o.isDefault);
  const routes = (carriers.length ? carriers : [main]).flatMap((o) => o.result.routes ?? []);
  if (routes.length) merged.routes = routes.map((r) => ({ ...r }));
  if (main.result.dns && Object.keys(main.result.dns).length) merged.dns = main.result.dns;
  return merged;
}
