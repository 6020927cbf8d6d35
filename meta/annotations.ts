/**
 * Pod annotations that pick a pod's networks, read exactly as Multus and CNI-Genie read them:
 * `k8s.v1.cni.cncf.io/networks` (short or JSON form), `v1.multus-cni.io/default-network`
 * and Genie's `cni`.
 *
 * Rules follow Multus's `parsePodNetworkAnnotation` (pkg/k8sclient/k8sclient.go): a value
 * containing `[`, `{` or `"` is JSON, anything else a comma separated list of
 * `[namespace/]name[@ifname]`; names and namespaces are DNS-1123 labels. podplex is stricter
 * where Multus would only fail later (empty items, bad `@ifname`, bad IPs): those fail here
 * with code 7 quoting the annotation key and the bad token.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { ifnameProblem } from "../conf/ifname.ts";
import { tryParseCidr, tryParseIp } from "../conf/ip.ts";
import { parseMac } from "../conf/mac.ts";
import {
  type Decoder,
  decodeStruct,
  LIMITS,
  parseJsonWithNumbers,
  quote,
  SELECTION_SPEC,
} from "./_selection_json.ts";

/** The Multus (NPWG) annotation listing a pod's secondary networks. */
export const NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks";
/** The Multus annotation replacing the cluster network for one pod. */
export const DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network";
/** CNI-Genie's annotation: the listed networks replace the cluster network. */
export const GENIE_ANNOTATION = "cni";
/** The annotation podplex writes back: what each interface got. */
export const NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status";
/** A NAD's device plugin resource (SR-IOV): its attachments get a device of the pod's. */
export const RESOURCE_NAME_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName";

/** A network by namespace and name (a NetworkAttachmentDefinition or a local definition). */
export interface NetworkRef {
  /** The network's namespace. */
  namespace: string;
  /** The network's name. */
  name: string;
}

/** One element of the networks annotation, with what the pod asked of that attachment. */
export interface NetworkSelection extends NetworkRef {
  /** Requested interface name in the pod (`@ifname`, `interface`, old `interfaceRequest`). */
  interface?: string;
  /** Requested addresses (`ips`), IP or CIDR notation as written. */
  ips?: string[];
  /** Requested MAC address (`mac`). */
  mac?: string;
  /** Gateways for a default route over this attachment (`default-route`). */
  defaultRoute?: string[];
  /** `portMappings` capability args. */
  portMappings?: unknown[];
  /** `bandwidth` capability args. */
  bandwidth?: Record<string, unknown>;
  /** `cni-args`: merged into the delegate conf's `args.cni`. */
  cniArgs?: Record<string, unknown>;
  /** `infiniband-guid`. */
  infinibandGuid?: string;
  /** `deviceID` (a PCI address for SR-IOV). */
  deviceId?: string;
}

/** What a pod's annotations ask for, before any network is looked up. */
export interface PodNetworkPlan {
  /** Replaces the cluster network (default-network annotation, or Genie's first network). */
  clusterOverride?: NetworkRef;
  /**
   * Secondary networks in order, interface names NOT yet assigned unless requested.
   * With Genie, these are Genie's second and later networks with `eth1`, `eth2`... requested.
   */
  secondary: NetworkSelection[];
  /**
   * With Genie's `cni`: every listed network replaces the cluster network, eth0, eth1, ...
   * Informational: the list is already reflected in `clusterOverride` (the first) and
   * `secondary` (the rest); do not attach these a second time.
   */
  genie?: NetworkRef[];
  /** Things the pod's author should know (ignored keys, ignored annotations). */
  warnings: string[];
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const JSON_MARKERS = /[[{"]/;

/** Whether `name` is a valid CNI_IFNAME (1–15 bytes, not `.`/`..`, no `/`, `:` or space). */
export function isValidIfname(name: string): boolean {
  return ifnameProblem(name) === undefined;
}

function invalid(key: string, msg: string): CniError {
  return new CniError(Code.InvalidConfig, `Invalid annotation "${key}": ${msg}`);
}

/** Kubernetes' bounds: a namespace is a label (63), an object name at most 253 characters. */
const MAX_NAME = { namespace: 63, "network name": 253 } as const;

function checkLabel(key: string, what: keyof typeof MAX_NAME, value: string): void {
  if (!DNS_LABEL.test(value)) {
    throw invalid(
      key,
      `${what} ${quote(value)} is not a DNS-1123 label (lower case alphanumerics and "-", ` +
        `starting and ending alphanumerically)`,
    );
  }
  if (value.length > MAX_NAME[what]) {
    throw invalid(
      key,
      `${what} ${quote(value)} is ${value.length} characters; at most ${MAX_NAME[what]}`,
    );
  }
}

/**
 * Parses `name` or `ns/name`; a name without a namespace, or with an empty one (`/name`, as
 * Multus reads it), is looked up in `defaultNamespace`.
 *
 * @param what where the value came from, quoted in errors (an annotation key or a conf field)
 * @throws {CniError} code 7 when the value is not a valid reference
 */
export function parseNetworkRef(value: string, defaultNamespace: string, what: string): NetworkRef {
  const parts = value.trim().split("/");
  if (parts.length > 2) throw invalid(what, `${quote(value)} has more than one "/"`);
  const name = parts[parts.length - 1].trim();
  const namespace = parts.length === 2 && parts[0].trim() !== ""
    ? parts[0].trim()
    : defaultNamespace;
  checkLabel(what, "namespace", namespace);
  checkLabel(what, "network name", name);
  return { namespace, name };
}

/**
 * One `[ns/]name[@ifname]` item, split as Multus's parsePodNetworkObjectName does: an empty
 * `@ifname` (`net@`) asks for no name, an empty namespace (`/net`) is the default one.
 */
function parseShortItem(item: string, podNamespace: string, key: string): NetworkSelection {
  if (item === "") throw invalid(key, "empty network name in the comma separated list");
  const at = item.split("@");
  if (at.length > 2) throw invalid(key, `${quote(item)} has more than one "@"`);
  const ref = parseNetworkRef(at[0], podNamespace, key);
  const ifname = at.length === 2 ? at[1].trim() : "";
  if (ifname === "") return ref;
  if (!isValidIfname(ifname)) {
    throw invalid(
      key,
      `interface name ${quote(ifname)} in ${quote(item)} is not a valid CNI_IFNAME`,
    );
  }
  return { ...ref, interface: ifname };
}

/** JSON field → NetworkSelection field; the rest of the element's fields are not kept. */
const SELECTION_FIELDS = {
  name: "name",
  namespace: "namespace",
  interface: "interface",
  mac: "mac",
  "infiniband-guid": "infinibandGuid",
  deviceID: "deviceId",
  ips: "ips",
  "default-route": "defaultRoute",
  portMappings: "portMappings",
  bandwidth: "bandwidth",
  "cni-args": "cniArgs",
} as const;

/** An element's decoded fields as a selection; empty strings are absent, as in Multus. */
function toSelection(fields: Record<string, unknown>, podNamespace: string): NetworkSelection {
  // The old `interfaceRequest` only counts when `interface` is empty (Multus pre-3.2 rule).
  if (!fields.interface && fields.interfaceRequest) fields.interface = fields.interfaceRequest;
  const sel: Record<string, unknown> = {};
  for (const [from, to] of Object.entries(SELECTION_FIELDS)) {
    const v = fields[from];
    if (v !== undefined && v !== "") sel[to] = v;
  }
  sel.namespace ??= podNamespace;
  return sel as unknown as NetworkSelection;
}

/**
 * Checks the values Multus checks (mac and infiniband-guid with Go's ParseMAC, ips and
 * default-route with Go's ParseIP/ParseCIDR: no leading zeros) plus names and ifname, and
 * normalises the MAC once, to lower-case colon form.
 */
function validateSelection(sel: NetworkSelection, key: string): void {
  checkLabel(key, "namespace", sel.namespace);
  checkLabel(key, "network name", sel.name);
  if (sel.interface !== undefined && !isValidIfname(sel.interface)) {
    throw invalid(key, `interface name ${quote(sel.interface)} is not a valid CNI_IFNAME`);
  }
  if (sel.mac !== undefined) {
    const mac = parseMac(sel.mac);
    if (!mac) throw invalid(key, `"mac" ${quote(sel.mac)} is not a MAC address`);
    sel.mac = mac.text;
  }
  if (sel.infinibandGuid !== undefined && !parseMac(sel.infinibandGuid)) {
    throw invalid(key, `"infiniband-guid" ${quote(sel.infinibandGuid)} is not a hardware address`);
  }
  for (const ip of sel.ips ?? []) {
    const ok = ip.includes("/") ? tryParseCidr(ip) : tryParseIp(ip);
    if (!ok) throw invalid(key, `"ips" entry ${quote(ip)} is not an IP address or CIDR`);
  }
  for (const gw of sel.defaultRoute ?? []) {
    if (!tryParseIp(gw)) {
      throw invalid(key, `"default-route" entry ${quote(gw)} is not an IP address`);
    }
  }
}

function parseJsonForm(
  value: string,
  podNamespace: string,
  key: string,
  warnings: string[],
): NetworkSelection[] {
  const bad = (msg: string) => invalid(key, msg);
  const json = parseJsonWithNumbers(value, bad);
  const parsed = json.value;
  if (!Array.isArray(parsed)) {
    throw invalid(key, `the JSON form must be a list of objects, got ${quote(parsed)}`);
  }
  checkCount(key, parsed.length);
  const decoder: Decoder = { json, bad, warnings, where: key };
  return parsed.map((el, i) => {
    if (typeof el !== "object" || el === null || Array.isArray(el)) {
      throw invalid(key, `list element ${i} ${quote(el)} is not an object`);
    }
    const fields = decodeStruct(decoder, SELECTION_SPEC, el as Record<string, unknown>, "");
    if (typeof fields.name !== "string" || fields.name === "") {
      throw invalid(key, `list element ${i} ${quote(el)} has no "name"`);
    }
    const sel = toSelection(fields, podNamespace);
    validateSelection(sel, key);
    return sel;
  });
}

function checkCount(key: string, n: number): void {
  if (n > LIMITS.networks) {
    throw invalid(key, `${n} networks requested; at most ${LIMITS.networks} are allowed`);
  }
}

/** An annotation's value: a string (or absent) of bounded size. */
function annotationText(annotations: Record<string, unknown>, key: string): string | undefined {
  const v = annotations[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw invalid(key, `the value must be a string, got ${quote(v)}`);
  const bytes = new TextEncoder().encode(v).length;
  if (bytes > LIMITS.bytes) {
    throw invalid(key, `the value is ${bytes} bytes; at most ${LIMITS.bytes} are read`);
  }
  return v;
}

function parseAnnotationValue(
  value: string,
  podNamespace: string,
  key: string,
  warnings: string[],
): NetworkSelection[] {
  if (value.trim() === "") return [];
  if (JSON_MARKERS.test(value)) return parseJsonForm(value, podNamespace, key, warnings);
  const items = value.split(",");
  checkCount(key, items.length);
  return items.map((item) => parseShortItem(item.trim(), podNamespace, key));
}

/**
 * Parses the value of `k8s.v1.cni.cncf.io/networks`: the short form (`"a"`, `"ns/a"`,
 * `"ns/a@net3"`, comma separated, whitespace trimmed) or the JSON list. A network without a
 * namespace is in the pod's. An empty value means no networks.
 *
 * @example
 * ```ts
 * parseNetworksAnnotation("macvlan-conf-1@macvlan1, other/b", "default");
 * // [{namespace: "default", name: "macvlan-conf-1", interface: "macvlan1"},
 * //  {namespace: "other", name: "b"}]
 * ```
 * @throws {CniError} code 7 quoting the annotation key and the bad token
 */
export function parseNetworksAnnotation(value: string, podNamespace: string): NetworkSelection[] {
  return parseAnnotationValue(value, podNamespace, NETWORKS_ANNOTATION, []);
}

function parseDefaultNetwork(
  value: string,
  ns: string,
  warnings: string[],
): NetworkRef | undefined {
  const key = DEFAULT_NETWORK_ANNOTATION;
  const sels = parseAnnotationValue(value, ns, key, warnings);
  if (sels.length === 0) {
    warnings.push(`Annotation "${key}" is empty; the cluster network is kept`);
    return undefined;
  }
  if (sels.length > 1) throw invalid(key, `more than one default network in ${quote(value)}`);
  const { namespace, name, ...rest } = sels[0];
  if (Object.keys(rest).length > 0) {
    warnings.push(
      `Annotation "${key}": ${Object.keys(rest).join(", ")} ignored for the default network`,
    );
  }
  return { namespace, name };
}

/** One Genie item: `name`, `ns/name` or `name@ifname` (CNI-Genie's IfNameDelimiter). */
interface GenieItem {
  ref: NetworkRef;
  interface?: string;
}

function parseGenie(value: string, podNamespace: string): GenieItem[] {
  const key = GENIE_ANNOTATION;
  if (JSON_MARKERS.test(value)) {
    throw invalid(key, `${quote(value)} must be a comma separated list of names`);
  }
  const items = value.split(",");
  checkCount(key, items.length);
  return items.map((item) => {
    const sel = parseShortItem(item.trim(), podNamespace, key);
    const ref = { namespace: sel.namespace, name: sel.name };
    return sel.interface ? { ref, interface: sel.interface } : { ref };
  });
}

/**
 * Genie's interface names: requested ones as asked (twice the same is an error), the others
 * `eth0`, `eth1`... in order, skipping the `ethN` names requested (Genie's getIntfName).
 * The network that gets `eth0` is the runtime's interface: it replaces the cluster network.
 */
function genieInterfaces(items: GenieItem[]): string[] {
  const key = GENIE_ANNOTATION;
  const requested = new Set<string>();
  for (const it of items) {
    if (!it.interface) continue;
    if (requested.has(it.interface)) {
      throw invalid(key, `interface ${quote(it.interface)} is requested twice`);
    }
    requested.add(it.interface);
  }
  let next = 0;
  return items.map((it) => {
    if (it.interface) return it.interface;
    while (requested.has(`eth${next}`)) next++;
    return `eth${next++}`;
  });
}

function planGenie(value: string, podNamespace: string, warnings: string[]): PodNetworkPlan {
  const items = parseGenie(value, podNamespace);
  const names = genieInterfaces(items);
  const first = names.indexOf("eth0");
  if (first < 0) {
    throw invalid(
      GENIE_ANNOTATION,
      `no network is on eth0 (the runtime's interface) in ${quote(value)}: leave one without ` +
        `"@ifname" or ask for "@eth0"`,
    );
  }
  const secondary = items
    .map((it, i) => ({ ...it.ref, interface: names[i] }))
    .filter((_, i) => i !== first);
  return {
    clusterOverride: items[first].ref,
    secondary,
    genie: items.map((it) => it.ref),
    warnings,
  };
}

/**
 * Reads a pod's annotations into a plan: which network replaces the cluster network and
 * which secondary networks to attach, in order.
 *
 * Precedence: Multus's annotations win over Genie's `cni` (with a warning). The
 * default-network annotation's names without a namespace are in `defaultNetworkNamespace`
 * (Multus's multusNamespace); the other annotations' in the pod's namespace. The values
 * read must be strings of at most {@linkcode LIMITS}.bytes bytes naming at most
 * {@linkcode LIMITS}.networks networks.
 *
 * @throws {CniError} code 7 for any malformed annotation, naming it
 */
export function planPodNetworks(
  annotations: Readonly<Record<string, unknown>>,
  podNamespace: string,
  opts: { defaultNetworkNamespace: string },
): PodNetworkPlan {
  const warnings: string[] = [];
  const networks = annotationText(annotations, NETWORKS_ANNOTATION);
  const defaultNet = annotationText(annotations, DEFAULT_NETWORK_ANNOTATION);
  const genie = annotationText(annotations, GENIE_ANNOTATION);
  const hasMultus = networks !== undefined || defaultNet !== undefined;
  if (genie !== undefined && hasMultus) {
    const which = networks !== undefined ? NETWORKS_ANNOTATION : DEFAULT_NETWORK_ANNOTATION;
    warnings.push(`Annotation "${GENIE_ANNOTATION}" ignored: "${which}" takes precedence`);
  }
  if (!hasMultus && genie !== undefined && genie.trim() !== "") {
    return planGenie(genie, podNamespace, warnings);
  }
  const plan: PodNetworkPlan = { secondary: [], warnings };
  if (defaultNet !== undefined) {
    const ov = parseDefaultNetwork(defaultNet, opts.defaultNetworkNamespace, warnings);
    if (ov) plan.clusterOverride = ov;
  }
  if (networks !== undefined) {
    plan.secondary = parseAnnotationValue(networks, podNamespace, NETWORKS_ANNOTATION, warnings);
  }
  return plan;
}
