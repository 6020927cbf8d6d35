/**
 * Where an ADD learns the network policy of the pod it makes: a {@linkcode PolicySource}.
 * The local one reads a policiesDir and the state store (meta/policy/local.ts); the daemon
 * gives its own, fed by its watch of the API server (controllers/policy). The labels of a
 * standalone pod ride in the pod's annotations ({@linkcode POD_LABELS_ANNOTATION}).
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import type { NetworkStatusEntry } from "../network_status.ts";
import type { PodState } from "../state.ts";
import type { PodInterface, PodView, PolicyWorld } from "./types.ts";

/**
 * What a source answers for a pod being added:
 * - `undefined`: no policy can select it (nothing to do: no table, no nftables loaded);
 * - `"unsynced"`: the source cannot tell yet (a daemon before its first sync): the pod
 *   starts deny-all, and the source opens it once it knows;
 * - a world: the pod's rules are resolved in it and applied before the ADD returns. The
 *   world's entry of the same namespace/name is used when it has one (a daemon knows the
 *   pod's container ports), else the pod as the ADD gave it.
 */
export type PolicyAnswer = PolicyWorld | "unsynced" | undefined;

/** The policies an ADD enforces, and who is told when a pod's addresses come or go. */
export interface PolicySource {
  /** The world in which `pod` (its interfaces and addresses as this ADD made them) is judged. */
  worldFor(pod: PodView): Promise<PolicyAnswer>;
  /**
   * Called after a successful ADD (`gone` false) or DEL (`gone` true): the tables of other
   * pods whose peers name this pod's addresses are brought up to date. The local source
   * re-renders them; a daemon whose watch sees the pod's IPs change needs no such hook.
   * Failures only warn (the pod itself is done).
   */
  podChanged?(pod: PodView, gone: boolean): Promise<void>;
}

/** Applies an nft script in a netns as one transaction (default: libnftables through FFI). */
export type TableApplier = (netns: string, script: string) => Promise<void>;

/** The default applier: ffi/nftables.ts, loaded on the first table applied. */
export const ffiApplier: TableApplier = async (netns, script) => {
  (await import("../../ffi/nftables.ts")).runNftIn(netns, script);
};

/**
 * The annotation holding a standalone pod's labels (`pod up --labels`), `k=v[,k=v]`:
 * without an API server, the annotations are what a runtime hands a CNI plugin.
 */
export const POD_LABELS_ANNOTATION = "podplex.io/labels";

/** A label key: an optional DNS-subdomain prefix and `/`, then a name of 1-63 characters. */
const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
/** A label value: empty, or 1-63 characters starting and ending alphanumeric. */
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/**
 * Parses `k=v[,k=v]` labels as Kubernetes validates them.
 *
 * @param where what to name in the error (`--labels`, the annotation)
 * @throws {CniError} code 7 naming `where` and the pair at fault
 *
 * @example
 * ```ts
 * parseLabels("app=web,tier=db", "--labels"); // { app: "web", tier: "db" }
 * ```
 */
export function parseLabels(text: string, where: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const eq = pair.indexOf("=");
    const [k, v] = eq < 0 ? [pair, undefined] : [pair.slice(0, eq), pair.slice(eq + 1)];
    if (v === undefined || !LABEL_KEY.test(k) || k.length > 316 || !LABEL_VALUE.test(v)) {
      throw new CniError(
        Code.InvalidConfig,
        `Invalid label "${pair}" in ${where}: expected key=value, a key of letters, digits, ` +
          `"-", "_", "." (an optional "prefix/") and a value of at most 63 such characters`,
      );
    }
    out[k] = v;
  }
  return out;
}

/** Labels as `k=v,k=v` (sorted), the form {@linkcode parseLabels} reads. */
export function formatLabels(labels: Record<string, string>): string {
  return Object.keys(labels).sort().map((k) => `${k}=${labels[k]}`).join(",");
}

/** The gateways of an attachment's result: the node's addresses on that network. */
function gatewaysOf(result: Record<string, unknown> | undefined): string[] {
  const ips = Array.isArray(result?.ips) ? result.ips as Array<{ gateway?: unknown }> : [];
  return ips.flatMap((ip) => typeof ip.gateway === "string" ? [ip.gateway] : []);
}

/** The pod a state describes, as policy sees it; undefined for a state without a pod name. */
export function podFromState(s: PodState): PodView | undefined {
  if (!s.podName || !s.podNamespace) return undefined;
  const byIf = new Map(s.attachments.map((a) => [a.ifname, a]));
  const status = (s.networkStatus ?? []) as NetworkStatusEntry[];
  const interfaces = status.filter((e) => e.interface).map((e): PodInterface => {
    const att = byIf.get(e.interface!) ?? s.attachments.find((a) => a.network === e.name);
    return {
      ifname: e.interface!,
      network: e.name,
      cluster: att?.isCluster ?? false,
      ips: e.ips ?? [],
      nodeIps: [...new Set([...e.gateway ?? [], ...gatewaysOf(att?.result)])],
    };
  });
  return {
    namespace: s.podNamespace,
    name: s.podName,
    labels: s.podLabels ?? {},
    interfaces,
    ports: [],
  };
}
