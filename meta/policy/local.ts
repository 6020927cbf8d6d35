/**
 * Network policy without an API server: the policies of a `policiesDir`
 * (`<policiesDir>/<namespace>/*.{yaml,yml,json}`: NetworkPolicy, MultiNetworkPolicy, and a
 * Namespace object for that namespace's labels), the pods of the state store (their labels
 * as `pod up --labels` gave them, their interfaces and addresses from the network-status),
 * and the step that renders and applies every pod's table.
 *
 * @module
 */
import { parseYaml, yamlErrorSummary } from "../../conf/yaml.ts";
import { isObject } from "../../conf/json.ts";
import type { PodState } from "../state.ts";
import type { Logger } from "../log.ts";
import { parsePolicy } from "./parse.ts";
import { renderPodTable } from "./render.ts";
import { resolvePod } from "./resolve.ts";
import { ffiApplier, podFromState, type PolicySource, type TableApplier } from "./source.ts";
import type { NamespaceView, PodView, Policy, PolicyIssue, PolicyWorld } from "./types.ts";

/** The label the API server puts on every namespace (and podplex on local ones). */
export const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

/** What a policiesDir holds. */
export interface LocalPolicies {
  policies: Policy[];
  /** Namespace labels from Namespace objects, by name. */
  namespaceLabels: Map<string, Record<string, string>>;
  /** Rules and policies dropped, files that do not parse. */
  issues: PolicyIssue[];
}

/** One object, a `kind: List`, or several `---`-separated YAML documents (JSON: one value). */
async function documents(path: string, text: string): Promise<unknown[]> {
  const docs = path.endsWith(".json")
    ? [JSON.parse(text)]
    : await Promise.all(text.split(/^---\s*$/m).filter((d) => d.trim()).map(parseYaml));
  return docs.flatMap((v) =>
    isObject(v) && v.kind === "List" && Array.isArray(v.items)
      ? v.items
      : v === null || v === undefined
      ? []
      : [v]
  );
}

/**
 * The sorted entries of a folder of the kind wanted; none when it does not exist.
 *
 * Synchronous on purpose: an ADD reads these on its main thread, where an async file call
 * would wait for a pool thread (milliseconds on a loaded node, per call).
 */
function entries(dir: string, want: "dir" | "file"): string[] {
  try {
    return [...Deno.readDirSync(dir)]
      .filter((e) => (want === "dir" ? e.isDirectory : e.isFile) && !e.name.startsWith("."))
      .map((e) => e.name).sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return [];
    throw e;
  }
}

/** A policy file's text and what it parsed to (its namespace is part of its path). */
interface Parsed {
  text: string;
  part: LocalPolicies;
}

/**
 * The files parsed so far, by path. Kept by their text, so a file is parsed again exactly
 * when its bytes changed (no time stamp to trust): a resident daemon serves many ADDs over
 * the same files and re-parsing YAML was most of what loading them cost. A per-call process
 * parses each file once anyway. Files no longer there are forgotten at the next load.
 */
const parsedFiles = new Map<string, Parsed>();

/** One policy file's policies, namespace labels and issues, parsed or as parsed before. */
async function parseFile(path: string, ns: string): Promise<LocalPolicies> {
  const part: LocalPolicies = { policies: [], namespaceLabels: new Map(), issues: [] };
  const bad = (e: unknown) => {
    const kind = path.endsWith(".json") ? "JSON" : "YAML";
    part.issues.push({ policy: path, field: "", msg: `not ${kind}: ${yamlErrorSummary(e)}` });
    return part;
  };
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    parsedFiles.delete(path);
    return bad(e); // gone since the listing, unreadable: as a file that does not parse
  }
  const held = parsedFiles.get(path);
  if (held?.text === text) return held.part;
  let objs: unknown[] = [];
  try {
    objs = await documents(path, text);
  } catch (e) {
    bad(e);
  }
  for (const o of objs) addObject(part, o, ns, path);
  parsedFiles.set(path, { text, part });
  return part;
}

/**
 * Reads every policy of a policiesDir; a folder that does not exist holds none. What it
 * returns shares the parsed policies with later loads: read it, never change it.
 *
 * @returns undefined when `dir` does not exist (policy is off), else what it holds
 */
export async function loadLocalPolicies(dir: string): Promise<LocalPolicies | undefined> {
  try {
    if (!Deno.statSync(dir).isDirectory) return undefined;
  } catch {
    return undefined;
  }
  const out: LocalPolicies = { policies: [], namespaceLabels: new Map(), issues: [] };
  const seen = new Set<string>();
  for (const ns of entries(dir, "dir")) {
    for (const file of entries(`${dir}/${ns}`, "file")) {
      if (!/\.(ya?ml|json)$/.test(file)) continue;
      const path = `${dir}/${ns}/${file}`;
      seen.add(path);
      const part = await parseFile(path, ns);
      out.policies.push(...part.policies);
      for (const [name, labels] of part.namespaceLabels) out.namespaceLabels.set(name, labels);
      out.issues.push(...part.issues);
    }
  }
  for (const path of parsedFiles.keys()) {
    if (path.startsWith(`${dir}/`) && !seen.has(path)) parsedFiles.delete(path);
  }
  return out;
}

function addObject(out: LocalPolicies, o: unknown, ns: string, path: string) {
  if (isObject(o) && o.kind === "Namespace") {
    const labels = isObject(o.metadata) && isObject(o.metadata.labels) ? o.metadata.labels : {};
    const name = isObject(o.metadata) && typeof o.metadata.name === "string" ? o.metadata.name : ns;
    out.namespaceLabels.set(
      name,
      Object.fromEntries(Object.entries(labels).filter(([, v]) => typeof v === "string")) as Record<
        string,
        string
      >,
    );
    return;
  }
  const { policy, issues } = parsePolicy(o, ns);
  out.issues.push(...issues.map((i) => ({ ...i, policy: `${i.policy} (${path})` })));
  if (policy) out.policies.push(policy);
}

/** The world of the local pods and policies. */
export function localWorld(local: LocalPolicies, states: PodState[]): PolicyWorld {
  const pods = localPods(states).map((p) => p.view);
  const names = new Set([
    ...pods.map((p) => p.namespace),
    ...local.policies.map((p) => p.namespace),
    ...local.namespaceLabels.keys(),
  ]);
  const namespaces = [...names].sort().map((name): NamespaceView => ({
    name,
    labels: { ...local.namespaceLabels.get(name), [NAMESPACE_NAME_LABEL]: name },
  }));
  return { policies: local.policies, namespaces, pods };
}

const logged = new Set<string>();

/** Logs each issue once per process (a daemon serves many ADDs over the same files). */
export function logIssuesOnce(log: Logger, issues: PolicyIssue[]): void {
  for (const i of issues) {
    const text = `Network policy ${i.policy}: ${i.field ? `${i.field} ` : ""}${i.msg}`;
    if (logged.has(text)) continue;
    logged.add(text);
    log.warning(`${text} (the rest of the policy is enforced)`);
  }
}

/** One pod of the state store with its netns, as `policy apply` walks them. */
export interface LocalPod {
  /** The pod as policy sees it. */
  view: PodView;
  /** Its netns (where its table lives). */
  netns: string;
}

/** The local pods of the state store (one per namespace/name: the last state wins). */
export function localPods(states: PodState[]): LocalPod[] {
  const byName = new Map<string, LocalPod>();
  for (const s of states) {
    const view = podFromState(s);
    if (view && s.netns) byName.set(`${view.namespace}/${view.name}`, { view, netns: s.netns });
  }
  return [...byName.values()];
}

const same = (a: PodView, b: PodView) => a.namespace === b.namespace && a.name === b.name;

/** The world with `pod` in it (replacing its namesake) or, when `gone`, without it. */
function withPod(world: PolicyWorld, pod: PodView, gone: boolean): PolicyWorld {
  const pods = world.pods.filter((p) => !same(p, pod));
  return { ...world, pods: gone ? pods : [...pods, pod] };
}

/** Options of {@linkcode localPolicySource}. */
export interface LocalSourceOptions {
  /** The pods' state (their labels, interfaces, addresses, netns). */
  states: () => Promise<PodState[]>;
  apply?: TableApplier;
  log: Logger;
}

/**
 * The policy source of the embedded default: the policies of `dir`, the pods of the state
 * store. No folder, or one without a policy: undefined for every pod, at the cost of a
 * directory read. After an ADD or DEL, the other local pods whose tables name the pod's
 * addresses are re-rendered (only those whose script changes).
 */
export function localPolicySource(dir: string, opts: LocalSourceOptions): PolicySource {
  const apply = opts.apply ?? ffiApplier;
  // Read once per source (one CNI call): the ADD's step and its peers' update see the same.
  let loaded: Promise<LocalPolicies | undefined> | undefined;
  function load(): Promise<LocalPolicies | undefined> {
    return loaded ??= loadLocalPolicies(dir).then((local) => {
      if (!local?.policies.length) return undefined;
      logIssuesOnce(opts.log, local.issues);
      return local;
    });
  }
  return {
    async worldFor(pod) {
      const local = await load();
      if (!local) return undefined;
      return withPod(localWorld(local, await opts.states()), pod, false);
    },
    async podChanged(pod, gone) {
      const local = await load();
      if (!local) return;
      const states = await opts.states();
      const now = withPod(localWorld(local, states), pod, gone);
      const before = withPod(now, pod, !gone);
      for (const other of localPods(states)) {
        if (same(other.view, pod)) continue;
        const view = now.pods.find((p) => same(p, other.view)) ?? other.view;
        const script = renderPodTable(resolvePod(now, view));
        if (script === renderPodTable(resolvePod(before, view))) continue;
        try {
          await apply(other.netns, script);
        } catch (e) {
          opts.log.warning(
            `Cannot update the network policy table of pod "${view.namespace}/${view.name}" ` +
              `in "${other.netns}": ${(e as Error).message}`,
          );
        }
      }
    },
  };
}

/** What re-rendering one local pod's table did. */
export interface Reapplied {
  pod: string;
  netns: string;
  /** The interfaces isolated in some direction (none: its table was removed). */
  isolated: string[];
  /** Why its table could not be applied. */
  error?: string;
}

/**
 * Replaces the table of every local pod with what the policies now say (a pod no policy
 * selects any more loses its table): what `podplex policy apply` and the daemon's watch of
 * a policiesDir run after a file changed.
 */
export async function reapplyLocal(
  local: LocalPolicies | undefined,
  states: PodState[],
  apply: TableApplier = ffiApplier,
): Promise<Reapplied[]> {
  const world = localWorld(
    local ?? { policies: [], namespaceLabels: new Map(), issues: [] },
    states,
  );
  const out: Reapplied[] = [];
  for (const { view, netns } of localPods(states)) {
    const rules = resolvePod(world, view);
    const done: Reapplied = {
      pod: `${view.namespace}/${view.name}`,
      netns,
      isolated: rules.interfaces.filter((i) => i.ingress || i.egress).map((i) => i.ifname),
    };
    try {
      await apply(netns, renderPodTable(rules));
    } catch (e) {
      done.error = (e as Error).message;
    }
    out.push(done);
  }
  return out;
}
