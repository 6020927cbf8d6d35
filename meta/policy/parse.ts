/**
 * Parses NetworkPolicy (`networking.k8s.io/v1`) and MultiNetworkPolicy (`k8s.cni.cncf.io`
 * v1beta1/v1beta2) objects into the model of `types.ts`, applying the API server's
 * defaults and validation.
 *
 * What cannot be applied is dropped at the smallest safe unit and reported as an issue:
 * a bad rule (peer, port, protocol, CIDR) drops that rule only, which can only allow less
 * (the policy still isolates the pods it selects); a policy whose selector or identity is
 * unusable selects nothing and is dropped whole. Never a throw.
 *
 * @module
 */
import { isObject, type JsonObject } from "../../conf/json.ts";
import { contains, tryParseCidr } from "../../conf/ip.ts";
import type {
  LabelSelector,
  Peer,
  Policy,
  PolicyIssue,
  PolicyPort,
  PolicyRule,
  Protocol,
  SelectorRequirement,
} from "./types.ts";

/** The annotation naming the networks a MultiNetworkPolicy applies to. */
export const POLICY_FOR = "k8s.v1.cni.cncf.io/policy-for";

const PROTOCOLS: readonly Protocol[] = ["TCP", "UDP", "SCTP"];
const OPERATORS = ["In", "NotIn", "Exists", "DoesNotExist"] as const;
/** IANA_SVC_NAME (a container port name): 1-15 of [a-z0-9-], a letter, no leading/trailing or double dash. */
const PORT_NAME = /^(?=.*[a-z])(?!-)(?!.*--)[a-z0-9-]{1,15}(?<!-)$/;
const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** A field that cannot be applied; caught where the rule (or policy) is dropped. */
class Invalid extends Error {
  constructor(readonly field: string, msg: string) {
    super(msg);
  }
}

function kindOf(raw: JsonObject): Policy["kind"] | undefined {
  if (raw.apiVersion === "networking.k8s.io/v1" && raw.kind === "NetworkPolicy") {
    return "NetworkPolicy";
  }
  const mnp = raw.apiVersion === "k8s.cni.cncf.io/v1beta1" ||
    raw.apiVersion === "k8s.cni.cncf.io/v1beta2";
  if (mnp && raw.kind === "MultiNetworkPolicy") return "MultiNetworkPolicy";
  return undefined;
}

/**
 * Parses one label selector; undefined/null when absent.
 *
 * @throws {Invalid} for a malformed selector
 */
function selector(v: unknown, field: string): LabelSelector | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw new Invalid(field, "is not an object");
  const matchLabels: Record<string, string> = {};
  const ml = v.matchLabels ?? {};
  if (!isObject(ml)) throw new Invalid(`${field}.matchLabels`, "is not an object");
  for (const [k, val] of Object.entries(ml)) {
    if (typeof val !== "string") {
      throw new Invalid(`${field}.matchLabels.${k}`, `${JSON.stringify(val)} is not a string`);
    }
    matchLabels[k] = val;
  }
  const me = v.matchExpressions ?? [];
  if (!Array.isArray(me)) throw new Invalid(`${field}.matchExpressions`, "is not a list");
  const matchExpressions = me.map((e, i) => requirement(e, `${field}.matchExpressions[${i}]`));
  return { matchLabels, matchExpressions };
}

function requirement(e: unknown, field: string): SelectorRequirement {
  if (!isObject(e)) throw new Invalid(field, "is not an object");
  if (typeof e.key !== "string" || e.key === "") {
    throw new Invalid(`${field}.key`, `${JSON.stringify(e.key)} is not a label key`);
  }
  const op = e.operator as SelectorRequirement["operator"];
  if (!OPERATORS.includes(op)) {
    throw new Invalid(
      `${field}.operator`,
      `${JSON.stringify(e.operator)} is not one of ${OPERATORS.join(", ")}`,
    );
  }
  const values = e.values ?? [];
  if (!Array.isArray(values) || values.some((s) => typeof s !== "string")) {
    throw new Invalid(`${field}.values`, `${JSON.stringify(values)} is not a list of strings`);
  }
  // apimachinery: In/NotIn need values, Exists/DoesNotExist must have none.
  const needs = op === "In" || op === "NotIn";
  if (needs && values.length === 0) {
    throw new Invalid(`${field}.values`, `must not be empty for ${op}`);
  }
  if (!needs && values.length > 0) throw new Invalid(`${field}.values`, `must be empty for ${op}`);
  return { key: e.key, operator: op, values: values as string[] };
}

function cidrOf(v: unknown, field: string) {
  const c = typeof v === "string" ? tryParseCidr(v) : undefined;
  if (!c) throw new Invalid(field, `${JSON.stringify(v)} is not a CIDR`);
  return c;
}

function peer(v: unknown, field: string): Peer {
  if (!isObject(v)) throw new Invalid(field, "is not an object");
  if (v.ipBlock !== undefined && v.ipBlock !== null) {
    if (v.podSelector != null || v.namespaceSelector != null) {
      throw new Invalid(field, "ipBlock cannot be combined with podSelector or namespaceSelector");
    }
    const b = v.ipBlock;
    if (!isObject(b)) throw new Invalid(`${field}.ipBlock`, "is not an object");
    const cidr = cidrOf(b.cidr, `${field}.ipBlock.cidr`);
    const except = b.except ?? [];
    if (!Array.isArray(except)) throw new Invalid(`${field}.ipBlock.except`, "is not a list");
    except.forEach((x, i) => {
      const f = `${field}.ipBlock.except[${i}]`;
      const c = cidrOf(x, f);
      // The API server: each except is a strict subset of cidr.
      if (c.family !== cidr.family || c.prefix <= cidr.prefix || !contains(cidr, c.network)) {
        throw new Invalid(f, `${JSON.stringify(x)} is not inside ${JSON.stringify(b.cidr)}`);
      }
    });
    return { kind: "ipBlock", cidr: b.cidr as string, except: except as string[] };
  }
  const podSelector = selector(v.podSelector, `${field}.podSelector`);
  const namespaceSelector = selector(v.namespaceSelector, `${field}.namespaceSelector`);
  if (!podSelector && !namespaceSelector) {
    throw new Invalid(field, "needs podSelector, namespaceSelector or ipBlock");
  }
  return { kind: "pods", podSelector, namespaceSelector };
}

function port(v: unknown, field: string): PolicyPort {
  if (!isObject(v)) throw new Invalid(field, "is not an object");
  const protocol = (v.protocol ?? "TCP") as Protocol;
  if (!PROTOCOLS.includes(protocol)) {
    throw new Invalid(`${field}.protocol`, `${JSON.stringify(v.protocol)} is not TCP, UDP or SCTP`);
  }
  const p = v.port;
  if (p === undefined || p === null) {
    if (v.endPort != null) throw new Invalid(`${field}.endPort`, "needs a numeric port");
    return { protocol };
  }
  if (typeof p === "string") {
    if (!PORT_NAME.test(p)) {
      throw new Invalid(`${field}.port`, `${JSON.stringify(p)} is not a port number or name`);
    }
    if (v.endPort != null) throw new Invalid(`${field}.endPort`, "cannot go with a named port");
    return { protocol, port: p };
  }
  if (!Number.isInteger(p) || (p as number) < 1 || (p as number) > 65535) {
    throw new Invalid(`${field}.port`, `${JSON.stringify(p)} is not in 1-65535`);
  }
  const end = v.endPort;
  if (end === undefined || end === null) return { protocol, port: p as number };
  if (!Number.isInteger(end) || (end as number) < (p as number) || (end as number) > 65535) {
    throw new Invalid(`${field}.endPort`, `${JSON.stringify(end)} is not in ${p}-65535`);
  }
  return { protocol, port: p as number, endPort: end as number };
}

function list(v: unknown, field: string): unknown[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw new Invalid(field, "is not a list");
  return v;
}

/** Parses one rule; an empty or missing peers/ports list means everyone/every port. */
function rule(v: unknown, field: string, peersKey: "from" | "to", index: number): PolicyRule {
  if (!isObject(v)) throw new Invalid(field, "is not an object");
  const peers = list(v[peersKey], `${field}.${peersKey}`)?.map((p, i) =>
    peer(p, `${field}.${peersKey}[${i}]`)
  );
  const ports = list(v.ports, `${field}.ports`)?.map((p, i) => port(p, `${field}.ports[${i}]`));
  return {
    index,
    peers: peers?.length ? peers : undefined,
    ports: ports?.length ? ports : undefined,
  };
}

/** The rules of one direction; each bad rule is dropped and reported. */
function rules(
  spec: JsonObject,
  key: "ingress" | "egress",
  id: string,
  issues: PolicyIssue[],
): PolicyRule[] {
  const raw = spec[key];
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    issues.push({ policy: id, field: `spec.${key}`, msg: "is not a list: no rule applies" });
    return [];
  }
  const out: PolicyRule[] = [];
  raw.forEach((r, i) => {
    try {
      out.push(rule(r, `spec.${key}[${i}]`, key === "ingress" ? "from" : "to", i));
    } catch (e) {
      if (!(e instanceof Invalid)) throw e;
      issues.push({ policy: id, field: e.field, msg: `${e.message}: rule dropped` });
    }
  });
  return out;
}

/** policyTypes after the API server's defaulting (networking/v1 SetDefaults_NetworkPolicy). */
function types(spec: JsonObject, id: string, issues: PolicyIssue[]) {
  const listed = Array.isArray(spec.policyTypes) ? spec.policyTypes : [];
  const valid = listed.filter((t) => t === "Ingress" || t === "Egress");
  if (
    listed.length !== valid.length || (spec.policyTypes != null && !Array.isArray(spec.policyTypes))
  ) {
    issues.push({
      policy: id,
      field: "spec.policyTypes",
      msg: `${
        JSON.stringify(spec.policyTypes)
      } has values other than Ingress and Egress: those are ignored`,
    });
  }
  if (valid.length === 0) {
    const egress = Array.isArray(spec.egress) && spec.egress.length > 0;
    return { ingressIsolated: true, egressIsolated: egress };
  }
  return { ingressIsolated: valid.includes("Ingress"), egressIsolated: valid.includes("Egress") };
}

/** `policy-for`'s networks as `ns/name` (a bare name is in the policy's namespace). */
function policyFor(meta: JsonObject, ns: string): string[] | undefined {
  const ann = isObject(meta.annotations) ? meta.annotations[POLICY_FOR] : undefined;
  if (typeof ann !== "string") return undefined;
  const nets = ann.split(",").map((s) => s.trim()).filter(Boolean);
  return nets.map((n) => (n.includes("/") ? n : `${ns}/${n}`));
}

/** The result of {@linkcode parsePolicy}: the policy (unless dropped whole) and what was wrong. */
export interface ParsedPolicy {
  policy?: Policy;
  issues: PolicyIssue[];
}

/**
 * Parses one policy object.
 *
 * @param raw the object (from YAML/JSON or the API server)
 * @param defaultNamespace the namespace when metadata has none (the policiesDir folder)
 * @returns the policy, or none when it cannot select anything, and every issue found
 *
 * @example
 * ```ts
 * const { policy } = parsePolicy({ apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy",
 *   metadata: { name: "deny" }, spec: { podSelector: {} } }, "default");
 * policy?.ingressIsolated; // true
 * ```
 */
export function parsePolicy(raw: unknown, defaultNamespace?: string): ParsedPolicy {
  const issues: PolicyIssue[] = [];
  if (!isObject(raw)) {
    return { issues: [{ policy: "?", field: "", msg: "is not an object: ignored" }] };
  }
  const kind = kindOf(raw);
  const meta = isObject(raw.metadata) ? raw.metadata : {};
  const name = typeof meta.name === "string" ? meta.name : "?";
  const namespace = typeof meta.namespace === "string" ? meta.namespace : defaultNamespace;
  const id = `${kind ?? raw.kind} ${namespace ?? "?"}/${name}`;
  const drop = (field: string, msg: string): ParsedPolicy => ({
    issues: [...issues, { policy: id, field, msg: `${msg}: policy ignored` }],
  });
  if (!kind) {
    return drop(
      "apiVersion",
      `${JSON.stringify(raw.apiVersion)} ${
        JSON.stringify(raw.kind)
      } is not a NetworkPolicy or MultiNetworkPolicy`,
    );
  }
  if (!NAME.test(name)) return drop("metadata.name", `${JSON.stringify(meta.name)} is not a name`);
  if (!namespace || !NAME.test(namespace)) {
    return drop("metadata.namespace", `${JSON.stringify(namespace)} is not a namespace`);
  }
  const spec = isObject(raw.spec) ? raw.spec : {};
  let podSelector: LabelSelector;
  try {
    podSelector = selector(spec.podSelector, "spec.podSelector") ??
      { matchLabels: {}, matchExpressions: [] };
  } catch (e) {
    if (!(e instanceof Invalid)) throw e;
    return drop(e.field, e.message);
  }
  const forNets = kind === "MultiNetworkPolicy" ? policyFor(meta, namespace) : undefined;
  if (kind === "MultiNetworkPolicy" && !forNets?.length) {
    return drop(`metadata.annotations.${POLICY_FOR}`, "is missing or empty");
  }
  const policy: Policy = {
    kind,
    namespace,
    name,
    podSelector,
    ...types(spec, id, issues),
    ingress: rules(spec, "ingress", id, issues),
    egress: rules(spec, "egress", id, issues),
  };
  if (forNets) policy.policyFor = forNets;
  return { policy, issues };
}
