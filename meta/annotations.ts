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

/** The Multus (NPWG) annotation listing a pod's secondary networks. */
export const NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks";
/** The Multus annotation replacing the cluster network for one pod. */
export const DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network";
/** CNI-Genie's annotation: the listed networks replace the cluster network. */
export const GENIE_ANNOTATION = "cni";
/** The annotation podplex writes back: what each interface got. */
export const NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status";

/** A network by namespace and name (a NetworkAttachmentDefinition or a local definition). */
export interface NetworkRef {
  namespace: string;
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
const MAC = /^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/;
// Multus validates infiniband-guid with Go's net.ParseMAC, which accepts 6, 8 or 20 octets.
const HW_ADDR =
  /^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$|^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){7}$|^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){19}$/;

/** Whether `name` is a valid CNI_IFNAME (1–15 bytes, not `.`/`..`, no `/`, `:` or space). */
export function isValidIfname(name: string): boolean {
  const bytes = new TextEncoder().encode(name).length;
  if (bytes < 1 || bytes > 15 || name === "." || name === "..") return false;
  return !/[/:\s]/.test(name);
}

function invalid(key: string, msg: string): CniError {
  return new CniError(Code.InvalidConfig, `Invalid annotation "${key}": ${msg}`);
}

function checkLabel(key: string, what: string, value: string): void {
  if (!DNS_LABEL.test(value)) {
    throw invalid(
      key,
      `${what} "${value}" is not a DNS-1123 label (lower case alphanumerics and "-", ` +
        `starting and ending alphanumerically)`,
    );
  }
}

/**
 * Parses `name` or `ns/name`; a name without a namespace is looked up in `defaultNamespace`.
 *
 * @param what where the value came from, quoted in errors (an annotation key or a conf field)
 * @throws {CniError} code 7 when the value is not a valid reference
 */
export function parseNetworkRef(value: string, defaultNamespace: string, what: string): NetworkRef {
  const parts = value.trim().split("/");
  if (parts.length > 2) throw invalid(what, `"${value}" has more than one "/"`);
  const name = parts[parts.length - 1].trim();
  const namespace = parts.length === 2 ? parts[0].trim() : defaultNamespace;
  checkLabel(what, "namespace", namespace);
  checkLabel(what, "network name", name);
  return { namespace, name };
}

/** One short-form item: `[ns/]name[@ifname]`. */
function parseShortItem(item: string, podNamespace: string, key: string): NetworkSelection {
  if (item === "") throw invalid(key, "empty network name in the comma separated list");
  const at = item.split("@");
  if (at.length > 2) throw invalid(key, `"${item}" has more than one "@"`);
  const ref = parseNetworkRef(at[0], podNamespace, key);
  if (at.length === 1) return ref;
  const ifname = at[1].trim();
  if (!isValidIfname(ifname)) {
    throw invalid(key, `interface name "${ifname}" in "${item}" is not a valid CNI_IFNAME`);
  }
  return { ...ref, interface: ifname };
}

const STRING_KEYS = {
  name: "name",
  namespace: "namespace",
  interface: "interface",
  interfaceRequest: "interface",
  mac: "mac",
  "infiniband-guid": "infinibandGuid",
  deviceID: "deviceId",
} as const;
const STRING_LIST_KEYS = { ips: "ips", "default-route": "defaultRoute" } as const;
const OBJECT_KEYS = { bandwidth: "bandwidth", "cni-args": "cniArgs" } as const;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Reads one JSON element's fields into a plain record, checking each type. */
function readJsonFields(
  el: Record<string, unknown>,
  key: string,
  warnings: string[],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(el)) {
    if (v === null || v === undefined) continue; // Go's json leaves a null field unset
    if (k in STRING_KEYS) {
      if (typeof v !== "string") {
        throw invalid(key, `"${k}" must be a string, got ${JSON.stringify(v)}`);
      }
      const field = STRING_KEYS[k as keyof typeof STRING_KEYS];
      // The old `interfaceRequest` only counts when `interface` is absent (Multus pre-3.2 rule).
      if (k === "interfaceRequest" && typeof el.interface === "string") continue;
      out[field] = v;
    } else if (k in STRING_LIST_KEYS) {
      if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) {
        throw invalid(key, `"${k}" must be a list of strings, got ${JSON.stringify(v)}`);
      }
      out[STRING_LIST_KEYS[k as keyof typeof STRING_LIST_KEYS]] = v;
    } else if (k in OBJECT_KEYS) {
      if (!isPlainObject(v)) {
        throw invalid(key, `"${k}" must be an object, got ${JSON.stringify(v)}`);
      }
      out[OBJECT_KEYS[k as keyof typeof OBJECT_KEYS]] = v;
    } else if (k === "portMappings") {
      if (!Array.isArray(v)) {
        throw invalid(key, `"portMappings" must be a list, got ${JSON.stringify(v)}`);
      }
      out.portMappings = v;
    } else {
      // Multus (Go's encoding/json) ignores unknown keys; keep that, but say so.
      warnings.push(`Annotation "${key}": unknown key "${k}" ignored`);
    }
  }
  return out;
}

function isIp(s: string): boolean {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(s)) return s.split(".").every((o) => Number(o) <= 255);
  if (!s.includes(":") || !/^[0-9a-fA-F:.]+$/.test(s)) return false;
  try {
    new URL(`http://[${s}]/`);
    return true;
  } catch {
    return false;
  }
}

function isIpOrCidr(s: string): boolean {
  const [ip, prefix, ...rest] = s.split("/");
  if (rest.length > 0 || !isIp(ip)) return false;
  if (prefix === undefined) return true;
  const max = ip.includes(":") ? 128 : 32;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= max;
}

/** Checks the values Multus checks (mac, infiniband-guid, ips) plus names and ifname. */
function validateSelection(sel: NetworkSelection, key: string): void {
  checkLabel(key, "namespace", sel.namespace);
  checkLabel(key, "network name", sel.name);
  if (sel.interface !== undefined && !isValidIfname(sel.interface)) {
    throw invalid(key, `interface name "${sel.interface}" is not a valid CNI_IFNAME`);
  }
  if (sel.mac !== undefined && !MAC.test(sel.mac)) {
    throw invalid(key, `"mac" "${sel.mac}" is not a MAC address`);
  }
  if (sel.infinibandGuid !== undefined && !HW_ADDR.test(sel.infinibandGuid)) {
    throw invalid(key, `"infiniband-guid" "${sel.infinibandGuid}" is not a hardware address`);
  }
  for (const ip of sel.ips ?? []) {
    if (!isIpOrCidr(ip)) throw invalid(key, `"ips" entry "${ip}" is not an IP address or CIDR`);
  }
  for (const gw of sel.defaultRoute ?? []) {
    if (!isIp(gw)) throw invalid(key, `"default-route" entry "${gw}" is not an IP address`);
  }
}

function parseJsonForm(
  value: string,
  podNamespace: string,
  key: string,
  warnings: string[],
): NetworkSelection[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    throw invalid(key, `${JSON.stringify(value)} is not valid JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(parsed)) {
    throw invalid(key, `the JSON form must be a list of objects, got ${JSON.stringify(parsed)}`);
  }
  return parsed.map((el) => {
    if (!isPlainObject(el)) {
      throw invalid(key, `list element ${JSON.stringify(el)} is not an object`);
    }
    const fields = readJsonFields(el, key, warnings);
    if (typeof fields.name !== "string" || fields.name === "") {
      throw invalid(key, `list element ${JSON.stringify(el)} has no "name"`);
    }
    const ns = typeof fields.namespace === "string" && fields.namespace !== ""
      ? fields.namespace
      : podNamespace;
    const sel = { ...fields, namespace: ns } as unknown as NetworkSelection;
    validateSelection(sel, key);
    return sel;
  });
}

function parseAnnotationValue(
  value: string,
  podNamespace: string,
  key: string,
  warnings: string[],
): NetworkSelection[] {
  if (value.trim() === "") return [];
  if (JSON_MARKERS.test(value)) return parseJsonForm(value, podNamespace, key, warnings);
  return value.split(",").map((item) => parseShortItem(item.trim(), podNamespace, key));
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
  if (sels.length > 1) throw invalid(key, `more than one default network in "${value}"`);
  const { namespace, name, ...rest } = sels[0];
  if (Object.keys(rest).length > 0) {
    warnings.push(
      `Annotation "${key}": ${Object.keys(rest).join(", ")} ignored for the default network`,
    );
  }
  return { namespace, name };
}

function parseGenie(value: string, podNamespace: string): NetworkRef[] {
  const key = GENIE_ANNOTATION;
  if (JSON_MARKERS.test(value)) {
    throw invalid(key, `"${value}" must be a comma separated list of names`);
  }
  return value.split(",").map((item) => {
    const t = item.trim();
    if (t === "") throw invalid(key, "empty network name in the comma separated list");
    if (t.includes("@")) {
      throw invalid(key, `"${t}": Genie networks take eth0, eth1... in order, no "@ifname"`);
    }
    return parseNetworkRef(t, podNamespace, key);
  });
}

/**
 * Reads a pod's annotations into a plan: which network replaces the cluster network and
 * which secondary networks to attach, in order.
 *
 * Precedence: Multus's annotations win over Genie's `cni` (with a warning). The
 * default-network annotation's names without a namespace are in `defaultNetworkNamespace`
 * (Multus's multusNamespace); the other annotations' in the pod's namespace.
 *
 * @throws {CniError} code 7 for any malformed annotation
 */
export function planPodNetworks(
  annotations: Record<string, string>,
  podNamespace: string,
  opts: { defaultNetworkNamespace: string },
): PodNetworkPlan {
  const warnings: string[] = [];
  const networks = annotations[NETWORKS_ANNOTATION];
  const defaultNet = annotations[DEFAULT_NETWORK_ANNOTATION];
  const genie = annotations[GENIE_ANNOTATION];
  const hasMultus = networks !== undefined || defaultNet !== undefined;
  if (genie !== undefined && hasMultus) {
    const which = networks !== undefined ? NETWORKS_ANNOTATION : DEFAULT_NETWORK_ANNOTATION;
    warnings.push(`Annotation "${GENIE_ANNOTATION}" ignored: "${which}" takes precedence`);
  }
  if (!hasMultus && genie !== undefined && genie.trim() !== "") {
    const refs = parseGenie(genie, podNamespace);
    const secondary = refs.slice(1).map((r, i) => ({ ...r, interface: `eth${i + 1}` }));
    return { clusterOverride: refs[0], secondary, genie: refs, warnings };
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
