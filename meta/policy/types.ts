/**
 * The network policy model: NetworkPolicy (networking.k8s.io/v1) and MultiNetworkPolicy
 * (k8s.cni.cncf.io v1beta1/v1beta2) after parsing, and the view of pods and namespaces a
 * policy is evaluated against. Plain data, no I/O.
 *
 * @module
 */

/** One `matchExpressions` entry of a label selector. */
export interface SelectorRequirement {
  /** The label key. */
  key: string;
  /** How the values are compared. */
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  /** The values (In/NotIn); empty for Exists/DoesNotExist. */
  values: string[];
}

/** A parsed label selector; `{}` (no labels, no expressions) selects everything. */
export interface LabelSelector {
  /** Labels that must all be equal. */
  matchLabels: Record<string, string>;
  /** Requirements that must all hold. */
  matchExpressions: SelectorRequirement[];
}

/** A transport protocol a policy port may name. */
export type Protocol = "TCP" | "UDP" | "SCTP";

/** One `ports` entry: a number (with an optional `endPort`), a name, or every port. */
export interface PolicyPort {
  /** The protocol (default TCP). */
  protocol: Protocol;
  /** A number, a container port name, or undefined (every port of the protocol). */
  port?: number | string;
  /** The last port of a range starting at the numeric `port`. */
  endPort?: number;
}

/** One `from`/`to` entry. */
export type Peer =
  | {
    kind: "pods";
    /** Undefined: every pod of the selected namespaces (namespaceSelector alone). */
    podSelector?: LabelSelector;
    /** Undefined: the policy's own namespace (podSelector alone). */
    namespaceSelector?: LabelSelector;
  }
  | { kind: "ipBlock"; cidr: string; except: string[] };

/** One ingress or egress rule; `peers`/`ports` undefined means everyone/every port. */
export interface PolicyRule {
  /** Its position in the policy's `ingress`/`egress` list (for `policy show`). */
  index: number;
  /** Who: undefined is everyone (an empty `from`/`to`). */
  peers?: Peer[];
  /** Where: undefined is every port. */
  ports?: PolicyPort[];
}

/** A policy after parsing and defaulting. */
export interface Policy {
  /** Which kind of object it came from. */
  kind: "NetworkPolicy" | "MultiNetworkPolicy";
  /** Its namespace (the pods it selects are there). */
  namespace: string;
  /** Its name. */
  name: string;
  /** The pods of its namespace it applies to. */
  podSelector: LabelSelector;
  /** policyTypes after defaulting (Ingress always, Egress when there are egress rules). */
  ingressIsolated: boolean;
  /** Whether it isolates egress. */
  egressIsolated: boolean;
  /** Its ingress rules. */
  ingress: PolicyRule[];
  /** Its egress rules. */
  egress: PolicyRule[];
  /** MultiNetworkPolicy only: the networks (`ns/name`) of `k8s.v1.cni.cncf.io/policy-for`. */
  policyFor?: string[];
}

/** A problem with a policy found while parsing or resolving (a rule dropped, a policy ignored). */
export interface PolicyIssue {
  /** `Kind ns/name`. */
  policy: string;
  /** Where (`spec.ingress[1].ports[0].protocol`). */
  field: string;
  msg: string;
}

/** A container port a named policy port resolves against. */
export interface ContainerPort {
  /** The port's name (named ports of a policy resolve to it). */
  name?: string;
  /** The port number. */
  port: number;
  /** Its protocol. */
  protocol: Protocol;
}

/** One interface of a pod. */
export interface PodInterface {
  /** The interface name inside the pod (eth0, net1). */
  ifname: string;
  /** The network: `ns/name` of its NAD/definition; the cluster network is marked `cluster`. */
  network: string;
  /** Whether this is the cluster network (where NetworkPolicy applies). */
  cluster: boolean;
  /** The pod's addresses on it (no prefix). */
  ips: string[];
  /** Addresses of the node on this network (the gateway): its traffic to the pod passes. */
  nodeIps?: string[];
}

/** A pod as policy sees it. */
export interface PodView {
  /** The pod's namespace. */
  namespace: string;
  /** The pod's name. */
  name: string;
  /** Its labels. */
  labels: Record<string, string>;
  /** Its interfaces (eth0 on the cluster network, net1...). */
  interfaces: PodInterface[];
  /** Its containers' ports (for named ports). */
  ports: ContainerPort[];
}

/** A namespace as policy sees it. */
export interface NamespaceView {
  /** The namespace's name. */
  name: string;
  /** Its labels (with kubernetes.io/metadata.name). */
  labels: Record<string, string>;
}

/** Everything a pod's rules depend on. */
export interface PolicyWorld {
  /** Every policy known. */
  policies: Policy[];
  /** Every namespace known. */
  namespaces: NamespaceView[];
  /** Every pod known. */
  pods: PodView[];
}

/** `Kind ns/name` of a policy, as logs and `policy show` name it. */
export function policyId(p: Pick<Policy, "kind" | "namespace" | "name">): string {
  return `${p.kind} ${p.namespace}/${p.name}`;
}
