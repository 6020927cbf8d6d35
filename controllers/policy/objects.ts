/**
 * The API server's objects as network policy sees them: a Pod becomes a
 * {@linkcode PodView} (labels, container ports for named ports, its addresses on the cluster
 * network from `status.podIPs` and on secondary networks from the network-status annotation),
 * a Namespace a {@linkcode NamespaceView}, a NetworkPolicy or MultiNetworkPolicy a parsed
 * policy with what was dropped from it. A pod of this node seen in podplex's state store
 * gets its interfaces from there (the ifnames and addresses its ADD made), which the API
 * learns only later.
 *
 * @module
 */
import { isObject, type JsonObject } from "../../conf/json.ts";
import { NETWORK_STATUS_ANNOTATION } from "../../meta/annotations.ts";
import type { NetworkStatusEntry } from "../../meta/network_status.ts";
import type { PodState } from "../../meta/state.ts";
import { parsePolicy } from "../../meta/policy/parse.ts";
import type {
  ContainerPort,
  NamespaceView,
  PodInterface,
  PodView,
  Policy,
  PolicyIssue,
  Protocol,
} from "../../meta/policy/types.ts";

/** The network a pod's `status.podIPs` are on, when no network-status names it. */
export const CLUSTER = "cluster";

/** A pod from the API: its policy view and where it runs. */
export interface ApiPod {
  view: PodView;
  nodeName?: string;
  uid?: string;
}

/** A policy from the API: parsed (undefined when dropped whole) and what was wrong. */
export interface ApiPolicy {
  id: string;
  policy?: Policy;
  issues: PolicyIssue[];
}

function strings(v: unknown): Record<string, string> {
  if (!isObject(v)) return {};
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) if (typeof val === "string") out[k] = val;
  return out;
}

function meta(obj: JsonObject): JsonObject {
  return isObject(obj.metadata) ? obj.metadata : {};
}

/** A Namespace object's view; undefined when it has no name. */
export function namespaceView(obj: unknown): NamespaceView | undefined {
  if (!isObject(obj)) return undefined;
  const m = meta(obj);
  if (typeof m.name !== "string") return undefined;
  return { name: m.name, labels: strings(m.labels) };
}

/** A policy object (NetworkPolicy or MultiNetworkPolicy of any served version), parsed. */
export function apiPolicy(obj: unknown, kind: "NetworkPolicy" | "MultiNetworkPolicy"): ApiPolicy {
  // A LIST's items carry no apiVersion/kind: the collection says what they are.
  const raw = isObject(obj) ? { ...obj } : {};
  if (kind === "NetworkPolicy") {
    raw.apiVersion ??= "networking.k8s.io/v1";
    raw.kind ??= "NetworkPolicy";
  } else {
    raw.apiVersion ??= "k8s.cni.cncf.io/v1beta1";
    raw.kind ??= "MultiNetworkPolicy";
  }
  const m = meta(raw);
  const { policy, issues } = parsePolicy(raw);
  return { id: `${kind} ${m.namespace ?? "?"}/${m.name ?? "?"}`, policy, issues };
}

function containerPorts(spec: JsonObject): ContainerPort[] {
  const out: ContainerPort[] = [];
  const containers = Array.isArray(spec.containers) ? spec.containers : [];
  for (const c of containers) {
    if (!isObject(c) || !Array.isArray(c.ports)) continue;
    for (const p of c.ports) {
      if (!isObject(p) || typeof p.containerPort !== "number") continue;
      const protocol = (typeof p.protocol === "string" ? p.protocol : "TCP") as Protocol;
      out.push({
        ...(typeof p.name === "string" ? { name: p.name } : {}),
        port: p.containerPort,
        protocol,
      });
    }
  }
  return out;
}

function podIps(status: JsonObject): string[] {
  const list = Array.isArray(status.podIPs)
    ? status.podIPs.map((e) => (isObject(e) ? e.ip : undefined))
    : [status.podIP];
  return list.filter((ip): ip is string => typeof ip === "string" && ip !== "");
}

function networkStatus(annotations: Record<string, string>): NetworkStatusEntry[] {
  const text = annotations[NETWORK_STATUS_ANNOTATION];
  if (!text) return [];
  try {
    const v = JSON.parse(text);
    return Array.isArray(v) ? v.filter((e) => isObject(e) && typeof e.name === "string") : [];
  } catch {
    return []; // not JSON: the pod is known by its podIPs only
  }
}

/**
 * A pod's interfaces from its API object: one per network-status entry with an interface;
 * the cluster one is the entry holding a `status.podIPs` address (else the `default` one);
 * with no such entry, `eth0` on the cluster network with the podIPs.
 */
function apiInterfaces(annotations: Record<string, string>, ips: string[]): PodInterface[] {
  const entries = networkStatus(annotations).filter((e) => typeof e.interface === "string");
  const holds = (e: NetworkStatusEntry) => (e.ips ?? []).some((ip) => ips.includes(ip));
  const cluster = entries.find(holds) ?? (ips.length ? undefined : entries.find((e) => e.default));
  const out = entries.map((e): PodInterface => ({
    ifname: e.interface!,
    network: e.name,
    cluster: e === cluster,
    ips: (e.ips ?? []).filter((ip) => typeof ip === "string"),
  }));
  if (!cluster && ips.length) {
    out.unshift({ ifname: "eth0", network: CLUSTER, cluster: true, ips });
  } else if (cluster && ips.length) {
    out[entries.indexOf(cluster)].ips = [...new Set([...cluster.ips ?? [], ...ips])];
  }
  return out;
}

/**
 * A Pod object's view; undefined for what takes no part in policy: a host-network pod (its
 * address is the node's), a pod that has ended (its addresses are given back), an object
 * without a name.
 */
export function apiPod(obj: unknown): ApiPod | undefined {
  if (!isObject(obj)) return undefined;
  const m = meta(obj);
  if (typeof m.name !== "string" || typeof m.namespace !== "string") return undefined;
  const spec = isObject(obj.spec) ? obj.spec : {};
  const status = isObject(obj.status) ? obj.status : {};
  if (spec.hostNetwork === true) return undefined;
  if (status.phase === "Succeeded" || status.phase === "Failed") return undefined;
  const annotations = strings(m.annotations);
  const view: PodView = {
    namespace: m.namespace,
    name: m.name,
    labels: strings(m.labels),
    interfaces: apiInterfaces(annotations, podIps(status)),
    ports: containerPorts(spec),
  };
  const out: ApiPod = { view };
  if (typeof spec.nodeName === "string") out.nodeName = spec.nodeName;
  if (typeof m.uid === "string") out.uid = m.uid;
  return out;
}

/** A pod of this node that podplex ADDed: where its netns is, and its interfaces. */
export interface LocalPod {
  key: string;
  netns: string;
  containerId: string;
  uid?: string;
  interfaces: PodInterface[];
  /** Labels its ADD was given (a standalone pod's `--labels`), when the API has none. */
  labels?: Record<string, string>;
}

/** The interfaces of a state: network-status entries, cluster as its attachment says. */
export function stateInterfaces(s: PodState): PodInterface[] {
  const cluster = new Map(s.attachments.map((a) => [a.ifname, a.isCluster]));
  const status = (s.networkStatus ?? []) as NetworkStatusEntry[];
  return status.filter((e) => e.interface).map((e): PodInterface => ({
    ifname: e.interface!,
    network: e.name,
    cluster: cluster.get(e.interface!) ?? false,
    ips: e.ips ?? [],
    nodeIps: e.gateway ?? [],
  }));
}

/**
 * This node's pods from their states: one per pod (`ns/name`), the newest ADD's when a
 * sandbox was made again; states without a pod name (not a Kubernetes pod) are left out.
 */
export function localPods(states: PodState[]): Map<string, LocalPod> {
  const out = new Map<string, LocalPod & { at: string }>();
  for (const s of states) {
    if (!s.podName || !s.podNamespace) continue;
    const key = `${s.podNamespace}/${s.podName}`;
    const had = out.get(key);
    if (had && had.at > s.createdAt) continue;
    const labels = s.podLabels;
    out.set(key, {
      key,
      at: s.createdAt,
      netns: s.netns,
      containerId: s.containerId,
      ...(s.podUid ? { uid: s.podUid } : {}),
      interfaces: stateInterfaces(s),
      ...(labels ? { labels } : {}),
    });
  }
  return new Map([...out].map(([k, { at: _, ...p }]) => [k, p]));
}
