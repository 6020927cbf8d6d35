/**
 * Turns a pod's request (annotations, podplex conf, CNI env) into the ordered list of
 * attachments one ADD makes: which network, on which interface, with which capability args.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { tryParseIp } from "../conf/ip.ts";
import {
  type NetworkRef,
  NETWORKS_ANNOTATION,
  type NetworkSelection,
  parseNetworkRef,
  planPodNetworks,
} from "./annotations.ts";
import { LIMITS } from "./_selection_json.ts";
import type { PodplexConf } from "./conf.ts";
import { type NetworkResolver, resolveClusterNetwork, type ResolvedNetwork } from "./networks.ts";

/** One network to attach, resolved, with its interface name. */
export interface PlannedAttachment {
  /** The network to attach. */
  network: ResolvedNetwork;
  /** The pod interface it makes. */
  ifname: string;
  /** The cluster (default) network, on the runtime's CNI_IFNAME. */
  isCluster: boolean;
  /** Carries the pod's default route (the cluster network unless a selection asks). */
  isDefault: boolean;
  /** What the pod asked of this attachment (absent for the cluster and default networks). */
  selection?: NetworkSelection;
}

/** Inputs of {@linkcode planAttachments}. */
export interface PlanInput {
  conf: PodplexConf;
  annotations: Record<string, string>;
  /** K8S_POD_NAMESPACE, or the conf's defaultNetworkNamespace when the runtime gives none. */
  podNamespace: string;
  /**
   * Whether the runtime named the pod's namespace. podman sends none: such a pod is not in a
   * system namespace, whatever `podNamespace` defaulted to, and gets `defaultNetworks`.
   */
  namespaceGiven: boolean;
  /** The runtime's CNI_IFNAME (the cluster network's interface). */
  ifname: string;
  resolver: NetworkResolver;
  /**
   * DEL without state: a network that cannot be resolved is reported here and left out
   * (the others keep the interfaces ADD gave them), and the checks that only guard an ADD
   * are skipped. Without it, the first network that cannot be resolved fails the plan.
   */
  onUnresolved?: (network: string, error: CniError) => void;
}

/** The plan: attachments in ADD order, and warnings for the log. */
export interface AttachmentPlan {
  attachments: PlannedAttachment[];
  warnings: string[];
}

/**
 * Plans the attachments of one ADD: the cluster network (or its replacement from the
 * default-network or Genie annotation) on CNI_IFNAME, then `defaultNetworks` (unless the pod
 * is in a system namespace), then the networks of the annotation, named `net1`..`netN` by
 * position unless one is requested.
 *
 * @throws {CniError} code 7 for a malformed annotation, a duplicate interface, or nothing to
 * attach; code 100 when a network cannot be found
 */
export async function planAttachments(input: PlanInput): Promise<AttachmentPlan> {
  const { conf, podNamespace, ifname, resolver } = input;
  const warnings: string[] = [];
  const plan = planPodNetworks(input.annotations, podNamespace, {
    defaultNetworkNamespace: conf.defaultNetworkNamespace,
  });
  const lenient = input.onUnresolved;
  const tolerant = async <T>(what: string, resolve: () => Promise<T>): Promise<T | undefined> => {
    if (!lenient) return await resolve();
    try {
      return await resolve();
    } catch (e) {
      lenient(what, CniError.wrap(e, Code.NetworkNotFound));
      return undefined;
    }
  };
  const cluster = await tolerant(
    "the cluster network",
    () =>
      plan.clusterOverride
        ? resolver.resolve(plan.clusterOverride)
        : resolveClusterNetwork(conf, resolver),
  );

  const secondary: NetworkSelection[] = [];
  // defaultNetworks are the admin's choice: namespace isolation does not apply to them.
  const adminChosen = new Set<NetworkSelection>();
  if (!(input.namespaceGiven && conf.systemNamespaces.includes(podNamespace))) {
    for (const name of conf.defaultNetworks) {
      const ref = parseNetworkRef(name, conf.defaultNetworkNamespace, "defaultNetworks");
      secondary.push(ref);
      adminChosen.add(ref);
    }
  }
  if (secondary.length === 0 && conf.defaultNetworks.length > 0) {
    warnings.push(
      `defaultNetworks skipped: pod namespace "${podNamespace}" is one of systemNamespaces`,
    );
  }
  secondary.push(...plan.secondary);
  if (secondary.length > LIMITS.networks) {
    throw new CniError(
      Code.InvalidConfig,
      `Too many networks for one pod: ${secondary.length} secondary networks ` +
        `(defaultNetworks and the annotation together); at most ${LIMITS.networks}`,
    );
  }

  if (!cluster && secondary.length === 0 && !lenient) {
    throw new CniError(
      Code.InvalidConfig,
      `Nothing to attach: no "clusterNetwork" in the podplex conf "${conf.name}" and no network requested`,
    );
  }
  const askDefault = secondary.some((s) => s.defaultRoute && s.defaultRoute.length > 0);
  const attachments: PlannedAttachment[] = [];
  if (cluster) {
    attachments.push({ network: cluster, ifname, isCluster: true, isDefault: !askDefault });
  }
  for (const [i, sel] of secondary.entries()) {
    const ref: NetworkRef = { namespace: sel.namespace, name: sel.name };
    const network = await tolerant(
      `network "${ref.namespace}/${ref.name}"`,
      () => resolver.resolve(ref, { skipIsolation: adminChosen.has(sel) }),
    );
    if (!network) continue; // its position still counts: the others keep their netN
    const att: PlannedAttachment = {
      network,
      ifname: sel.interface ?? `net${i + 1}`,
      isCluster: false,
      isDefault: !!sel.defaultRoute?.length,
    };
    if (!adminChosen.has(sel)) att.selection = sel;
    attachments.push(att);
  }
  if (!lenient) {
    requireDistinctIfnames(attachments);
    requireOneDefaultGatewayPerFamily(attachments);
  }
  return { attachments, warnings: [...plan.warnings, ...warnings] };
}

function requireDistinctIfnames(atts: PlannedAttachment[]): void {
  const seen = new Map<string, string>();
  for (const a of atts) {
    const other = seen.get(a.ifname);
    if (other !== undefined) {
      throw new CniError(
        Code.InvalidConfig,
        `Interface "${a.ifname}" requested twice: by network "${other}" and by network "${a.network.statusName}"`,
      );
    }
    seen.set(a.ifname, a.network.statusName);
  }
}

/**
 * A pod has one default route per family. Multus adds each `default-route` gateway with
 * its own route add, so a second gateway of a family fails in the kernel after the first
 * attachments were made; refusing it here fails the ADD before anything is made.
 */
function requireOneDefaultGatewayPerFamily(atts: PlannedAttachment[]): void {
  const seen = new Map<number, { gw: string; network: string }>();
  for (const a of atts) {
    for (const gw of a.selection?.defaultRoute ?? []) {
      const family = tryParseIp(gw)?.family ?? 4;
      const other = seen.get(family);
      if (other) {
        throw new CniError(
          Code.InvalidConfig,
          `Invalid annotation "${NETWORKS_ANNOTATION}": "default-route" asks for two IPv${family} ` +
            `default gateways, "${other.gw}" on network "${other.network}" and "${gw}" on ` +
            `network "${a.network.statusName}"`,
        );
      }
      seen.set(family, { gw, network: a.network.statusName });
    }
  }
}

/** CNI_ARGS keys that address one interface: the runtime meant the cluster network's. */
const PER_INTERFACE_ARGS = new Set(["IP", "MAC"]);

/**
 * The CNI_ARGS one attachment gets: all of the runtime's for the cluster network; for the
 * others, without `IP` and `MAC` (podman's `--ip`/`--mac-address` are for eth0: given to
 * every network they would fail net1's IPAM or clone eth0's MAC).
 */
export function cniArgsFor(att: PlannedAttachment, args: string | undefined): string | undefined {
  if (att.isCluster || !args) return args;
  const kept = args.split(";").filter((kv) => !PER_INTERFACE_ARGS.has(kv.split("=")[0]));
  return kept.join(";");
}

/**
 * The capability args one attachment gets from the pod's request, merged over the
 * runtime's (the cluster network also gets the runtime's own, as Multus passes them on).
 */
export function capabilityArgsFor(
  att: PlannedAttachment,
  runtimeArgs: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = att.isCluster ? { ...runtimeArgs } : {};
  const sel = att.selection;
  if (!sel) return out;
  if (sel.ips?.length) out.ips = sel.ips;
  if (sel.mac) out.mac = sel.mac;
  if (sel.portMappings?.length) out.portMappings = sel.portMappings;
  if (sel.bandwidth) out.bandwidth = sel.bandwidth;
  if (sel.infinibandGuid) out.infinibandGUID = sel.infinibandGuid;
  if (sel.deviceId) out.deviceID = sel.deviceId;
  return out;
}
