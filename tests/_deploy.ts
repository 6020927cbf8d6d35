/**
 * The manifests of deploy/, parsed, and what they must agree on with the code: the checker
 * behind tests/deploy_test.ts (the drift test) and the DaemonSet's container as
 * tests/image_test.ts runs it. Every expected value comes from the code's own constants (or,
 * for the API, from the requests the real client makes), never from a copy.
 *
 * @module
 */
import { parseAllDocuments } from "yaml";
import { ENTRY_NAME } from "../cli/_install_artifact.ts";
import {
  buildConflist,
  CONFLIST_NAME,
  KUBECONFIG_HOST_PATH,
  KUBECONFIG_SUBPATH,
  SERVICE_ENV_VARS,
} from "../cli/_install_conf.ts";
import { DEFAULT_BIN_DIR, DEFAULT_CONF_DIR, INSTALL_FLAGS } from "../cli/install.ts";
import { CONF_DEFAULTS } from "../meta/conf.ts";
import { NETNS_RUN_DIR } from "../ffi/netns.ts";
import { PATHS as POLICY_PATHS } from "../controllers/policy/policy.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

// deno-lint-ignore no-explicit-any
export type Obj = Record<string, any>;

/** Every object of deploy/*.yaml by `Kind/name`, and the files they came from. */
export async function loadManifests(dir = `${ROOT}/deploy`): Promise<Map<string, Obj>> {
  const out = new Map<string, Obj>();
  for (const e of Array.from(Deno.readDirSync(dir)).sort((a, b) => a.name < b.name ? -1 : 1)) {
    if (!/\.ya?ml$/.test(e.name)) continue;
    for (const doc of parseAllDocuments(await Deno.readTextFile(`${dir}/${e.name}`))) {
      if ("errors" in doc && doc.errors.length) {
        throw new Error(`${e.name}: ${doc.errors.map((x) => x.message).join("; ")}`);
      }
      const obj = doc.toJS() as Obj | null;
      if (!obj) continue;
      out.set(`${obj.kind}/${obj.metadata?.name}`, obj);
    }
  }
  return out;
}

/** `--flag=value` / `--flag value` / `--flag` arguments as [flag, value] pairs. */
export function parseArgs(args: string[]): [string, string | undefined][] {
  const out: [string, string | undefined][] = [];
  for (let i = 0; i < args.length; i++) {
    const m = args[i].match(/^--([^=]+)(?:=(.*))?$/);
    if (!m) {
      out.push([args[i], undefined]);
      continue;
    }
    const takesValue = (INSTALL_FLAGS as Obj)[m[1]]?.type === "string";
    out.push([m[1], m[2] !== undefined ? m[2] : takesValue ? args[++i] : undefined]);
  }
  return out;
}

/** The DaemonSet's install container, its volumes by name, and its pod spec. */
export function installContainer(m: Map<string, Obj>) {
  const ds = m.get("DaemonSet/podplex");
  if (!ds) throw new Error("deploy/ has no DaemonSet named podplex");
  const pod = ds.spec.template.spec as Obj;
  const container = (pod.containers as Obj[]).find((c) => c.name === "install");
  if (!container) throw new Error("the DaemonSet has no container named install");
  const volumes = new Map<string, Obj>((pod.volumes as Obj[]).map((v) => [v.name, v]));
  return { ds, pod, container, volumes };
}

/** The mountPath of the volume whose hostPath is `hostPath`, if any. */
function mountOfHostPath(c: ReturnType<typeof installContainer>, hostPath: string) {
  const vm = (c.container.volumeMounts as Obj[]).find((vm) =>
    c.volumes.get(vm.name)?.hostPath?.path === hostPath
  );
  return vm?.mountPath as string | undefined;
}

/** The Dockerfile's entrypoint and where it puts the artifact. */
async function dockerfile() {
  const text = await Deno.readTextFile(`${ROOT}/Dockerfile`);
  const entrypoint = JSON.parse(text.match(/^ENTRYPOINT (.*)$/m)?.[1] ?? "null");
  const artifactDir = text.match(/^COPY --from=build \S+ (\S+)$/m)?.[1];
  const denoVersion = text.match(/^ARG DENO_VERSION=(\S+)$/m)?.[1];
  return { entrypoint, artifactDir, denoVersion };
}

/**
 * Where the manifests and the code disagree, one sentence each (none when they agree).
 *
 * @param requests the API requests the real client makes (method and path), for RBAC and CRD
 */
export async function driftProblems(
  m: Map<string, Obj>,
  requests: { method: string; path: string; query?: string }[],
): Promise<string[]> {
  const bad: string[] = [];
  const c = installContainer(m);
  const df = await dockerfile();
  const setup = await Deno.readTextFile(`${ROOT}/scripts/setup.sh`);
  const denoJson = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));

  // The image and its entry.
  if (df.entrypoint?.[0] !== `${df.artifactDir}/${ENTRY_NAME}`) {
    bad.push(`Dockerfile ENTRYPOINT ${df.entrypoint} is not ${df.artifactDir}/${ENTRY_NAME}`);
  }
  if (JSON.stringify(c.container.command) !== JSON.stringify(df.entrypoint)) {
    bad.push(`DaemonSet command ${c.container.command} is not the image's ENTRYPOINT`);
  }
  if (df.denoVersion !== setup.match(/^DENO_VERSION=(\S+)$/m)?.[1]) {
    bad.push(`Dockerfile DENO_VERSION ${df.denoVersion} differs from scripts/setup.sh's`);
  }
  if (!String(c.container.image).endsWith(`:${denoJson.version}`)) {
    bad.push(`DaemonSet image ${c.container.image} is not tagged ${denoJson.version}`);
  }

  // Flags: known, with a value exactly when they take one.
  const args = new Map(parseArgs(c.container.args ?? []));
  for (const [flag, value] of args) {
    const spec = (INSTALL_FLAGS as Obj)[flag];
    if (!spec) bad.push(`DaemonSet passes "--${flag}", which podplex install does not know`);
    else if ((spec.type === "string") !== (value !== undefined)) {
      bad.push(`DaemonSet passes "--${flag}" ${value === undefined ? "without" : "with"} a value`);
    }
  }
  for (const env of c.container.env ?? []) {
    if (!(SERVICE_ENV_VARS as readonly string[]).includes(env.name)) {
      bad.push(`DaemonSet sets ${env.name}, which podplex install does not read`);
    }
  }

  // hostPaths: the dirs the flags name are the host's CNI dirs.
  for (const [flag, host] of [["bin-dir", DEFAULT_BIN_DIR], ["conf-dir", DEFAULT_CONF_DIR]]) {
    const mount = mountOfHostPath(c, host);
    if (!mount) bad.push(`DaemonSet mounts no hostPath "${host}"`);
    else if (args.get(flag) !== mount) {
      bad.push(`--${flag} is "${args.get(flag)}", but hostPath "${host}" is mounted at "${mount}"`);
    }
  }
  for (const host of [CONF_DEFAULTS.stateDir.replace(/\/[^/]+$/, ""), NETNS_RUN_DIR]) {
    if (mountOfHostPath(c, host) !== host) {
      bad.push(`DaemonSet does not mount hostPath "${host}" at the same path`);
    }
  }
  const kubeconfig = args.get("kubeconfig-file-host") ?? KUBECONFIG_HOST_PATH;
  if (kubeconfig !== `${DEFAULT_CONF_DIR}/${KUBECONFIG_SUBPATH}`) {
    bad.push(`the conflist would name kubeconfig "${kubeconfig}", not where install writes it`);
  }
  if (args.has("default-network-file") && args.get("default-network-file") === CONFLIST_NAME) {
    bad.push(`--default-network-file names podplex's own ${CONFLIST_NAME}`);
  }

  // The podplex conf from the ConfigMap.
  const confPath = args.get("podplex-conf");
  if (confPath) {
    const dir = confPath.slice(0, confPath.lastIndexOf("/"));
    const key = confPath.slice(dir.length + 1);
    const vm = (c.container.volumeMounts as Obj[]).find((v) => v.mountPath === dir);
    const cmName = vm && c.volumes.get(vm.name)?.configMap?.name;
    const cm = cmName && m.get(`ConfigMap/${cmName}`);
    if (!cm) bad.push(`--podplex-conf "${confPath}" is not in a mounted ConfigMap of deploy/`);
    else if (cm.metadata.namespace !== c.ds.metadata.namespace) {
      bad.push(`ConfigMap ${cmName} is not in the DaemonSet's namespace`);
    } else if (!(key in (cm.data ?? {}))) bad.push(`ConfigMap ${cmName} has no key "${key}"`);
    else {
      try {
        buildConflist(JSON.parse(cm.data[key]));
      } catch (e) {
        bad.push(`ConfigMap ${cmName} "${key}" is refused: ${(e as Error).message}`);
      }
    }
  }

  // The pod: host network, every taint, privileged, the service account of rbac.yaml.
  const sa = m.get(`ServiceAccount/${c.pod.serviceAccountName}`);
  if (!sa || sa.metadata.namespace !== c.ds.metadata.namespace) {
    bad.push(`serviceAccountName "${c.pod.serviceAccountName}" is not a ServiceAccount of deploy/`);
  }
  if (c.pod.automountServiceAccountToken === false) bad.push("the token is not mounted");
  if (c.pod.hostNetwork !== true) bad.push("the DaemonSet is not on the host network");
  if (!(c.pod.tolerations ?? []).some((t: Obj) => t.operator === "Exists" && !t.key)) {
    bad.push("the DaemonSet does not tolerate every taint");
  }
  if (c.container.securityContext?.privileged !== true) bad.push("install is not privileged");
  for (const k of ["requests", "limits"]) {
    if (!c.container.resources?.[k]?.memory) bad.push(`install has no memory ${k}`);
  }

  bad.push(...rbacProblems(m, c.pod.serviceAccountName, c.ds.metadata.namespace, requests));
  bad.push(...crdProblems(m, requests));
  bad.push(...policyCrdProblems(m, requests));
  return bad;
}

/**
 * The MultiNetworkPolicy CRD serves every version the policy controller asks for (the one
 * its requests used, and each it falls back to) and stores one of them.
 */
function policyCrdProblems(m: Map<string, Obj>, requests: Obj[]): string[] {
  const asked = new Set(
    [...requests.map((r) => r.path), ...POLICY_PATHS.multiPolicies]
      .map((p) => p.match(/^\/apis\/k8s\.cni\.cncf\.io\/([^/]+)\/multi-networkpolicies$/)?.[1])
      .filter((v): v is string => v !== undefined),
  );
  if (!requests.some((r) => /\/multi-networkpolicies$/.test(r.path))) {
    return ["the policy controller made no MultiNetworkPolicy request to check the CRD against"];
  }
  const crd = m.get("CustomResourceDefinition/multi-networkpolicies.k8s.cni.cncf.io");
  if (!crd) return ["no CRD named multi-networkpolicies.k8s.cni.cncf.io in deploy/"];
  const bad: string[] = [];
  const versions = crd.spec.versions as Obj[];
  for (const v of asked) {
    if (!versions.some((x) => x.name === v && x.served)) bad.push(`the CRD does not serve ${v}`);
  }
  if (versions.filter((x) => x.storage).length !== 1) bad.push("the CRD stores no one version");
  if (crd.spec.scope !== "Namespaced") bad.push("the MultiNetworkPolicy CRD is not namespaced");
  return bad;
}

/** RBAC: the binding gives the service account a role that allows every request made. */
function rbacProblems(m: Map<string, Obj>, sa: string, ns: string, requests: Obj[]): string[] {
  const bad: string[] = [];
  const binding = [...m.values()].find((o) =>
    o.kind === "ClusterRoleBinding" &&
    o.subjects?.some((s: Obj) => s.kind === "ServiceAccount" && s.name === sa && s.namespace === ns)
  );
  const role = binding && m.get(`ClusterRole/${binding.roleRef.name}`);
  if (!role) return [`no ClusterRoleBinding gives ${ns}/${sa} a ClusterRole of deploy/`];
  const allows = (group: string, resource: string, verb: string) =>
    (role.rules as Obj[]).some((r) =>
      r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb)
    );
  const verbOf: Record<string, string> = {
    GET: "get",
    PATCH: "patch",
    PUT: "update",
    POST: "create",
  };
  for (const req of requests) {
    // An object (`.../pods/web[/status]`), or a collection: a POST creates in it
    // (`.../events`), a GET lists it, a GET with `watch=1` watches it.
    const p = req.path.match(
      /^\/(?:api\/v1|apis\/([^/]+)\/[^/]+)(?:\/namespaces\/[^/]+)?\/([^/]+)(?:\/([^/]+)(?:\/([^/]+))?)?$/,
    );
    if (!p) {
      bad.push(`the client requested ${req.path}, which the check cannot map to a resource`);
      continue;
    }
    const resource = p[4] ? `${p[2]}/${p[4]}` : p[2];
    const watch = /(^|&)watch=(1|true)(&|$)/.test(req.query ?? "");
    const verb = req.method === "GET" && !p[3] ? (watch ? "watch" : "list") : verbOf[req.method];
    if (!allows(p[1] ?? "", resource, verb)) {
      const what = req.method === "GET" && !p[3] ? verb : req.method;
      bad.push(`ClusterRole ${role.metadata.name} does not allow ${what} ${resource}`);
    }
  }
  return bad;
}

/** The CRD serves the group, version and plural the client asks for NADs under. */
function crdProblems(m: Map<string, Obj>, requests: Obj[]): string[] {
  const nad = requests.map((r) =>
    r.path.match(/^\/apis\/([^/]+)\/([^/]+)\/namespaces\/[^/]+\/([^/]+)\//)
  )
    .find((x) => x);
  if (!nad) return ["the client made no NAD request to check the CRD against"];
  const [, group, version, plural] = nad;
  const crd = m.get(`CustomResourceDefinition/${plural}.${group}`);
  if (!crd) return [`no CRD named ${plural}.${group} in deploy/`];
  const bad: string[] = [];
  if (crd.spec.group !== group || crd.spec.names.plural !== plural) {
    bad.push(`the CRD is ${crd.spec.names.plural}.${crd.spec.group}, not ${plural}.${group}`);
  }
  const v = (crd.spec.versions as Obj[]).find((x) => x.name === version);
  if (!v?.served || !v?.storage) bad.push(`the CRD does not serve and store ${version}`);
  if (v?.schema?.openAPIV3Schema?.properties?.spec?.properties?.config?.type !== "string") {
    bad.push("the CRD's spec.config is not a string");
  }
  if (crd.spec.scope !== "Namespaced") bad.push("the CRD is not namespaced");
  return bad;
}
