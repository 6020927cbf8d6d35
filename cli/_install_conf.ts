/**
 * What `podplex install` writes into the host's CNI conf dir, as Multus's entrypoint does:
 * the podplex conflist wrapping the node's default network conf (found as the alphabetically
 * first `.conf`/`.conflist` other than podplex's own, or named by flag) and a kubeconfig made
 * from the DaemonSet's service account. Pure functions over texts, plus the atomic write.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { META_TYPE, parsePodplexConf } from "../meta/conf.ts";
import { INSTALLED_CONF, PODPLEX_CAPABILITIES } from "./_config.ts";
import { writeFileAtomic } from "../conf/io.ts";

/** The file name of podplex's conflist in the conf dir (sorts before the default network's). */
export const CONFLIST_NAME = INSTALLED_CONF.slice(INSTALLED_CONF.lastIndexOf("/") + 1);

/** The kubeconfig's place under the conf dir (DESIGN.md's node layout). */
export const KUBECONFIG_SUBPATH = "podplex.d/podplex.kubeconfig";

/** Where the kubeconfig lands, as the host sees it: under the installed conflist's dir. */
export const KUBECONFIG_HOST_PATH = INSTALLED_CONF.slice(0, INSTALLED_CONF.lastIndexOf("/") + 1) +
  KUBECONFIG_SUBPATH;

/** The pod's variables the kubeconfig is made from (kubelet sets HOST and PORT). */
export const SERVICE_ENV_VARS = [
  "KUBERNETES_SERVICE_PROTOCOL",
  "KUBERNETES_SERVICE_HOST",
  "KUBERNETES_SERVICE_PORT",
] as const;

/** The extensions of a default network conf, as the brief and Multus's autoconfig take them. */
const CONF_EXT = /\.(conf|conflist)$/;

/** A default network conf as found on disk. */
export interface DefaultConf {
  path: string;
  /** The file's bytes, decoded as UTF-8: embedded unchanged. */
  text: string;
  /** Its `cniVersion`, which the wrapping conflist takes (Multus keeps it too). */
  cniVersion: string;
}

/**
 * Finds the node's default network conf: `fileName` when given, else the alphabetically
 * first `.conf`/`.conflist` in `confDir` that is not podplex's own (nor a temp file of it).
 *
 * @returns undefined while there is none yet (the default network's own DaemonSet may not
 *   have written it)
 * @throws {CniError} code 7 when the file is not a JSON object with a string `cniVersion`
 */
export function findDefaultConf(confDir: string, fileName?: string): DefaultConf | undefined {
  let path: string | undefined;
  if (fileName) path = `${confDir}/${fileName}`;
  else {
    const names = listNames(confDir).filter((n) =>
      CONF_EXT.test(n) && !n.startsWith(CONFLIST_NAME) && !n.startsWith(".")
    ).sort();
    if (names.length === 0) return undefined;
    path = `${confDir}/${names[0]}`;
  }
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new CniError(Code.InvalidConfig, `Default network conf "${path}" is not JSON`, String(e));
  }
  const v = (obj as Record<string, unknown> | null)?.cniVersion;
  if (typeof obj !== "object" || obj === null || Array.isArray(obj) || typeof v !== "string") {
    throw new CniError(
      Code.InvalidConfig,
      `Default network conf "${path}" is not a CNI conf: no string "cniVersion"`,
    );
  }
  return { path, text, cniVersion: v };
}

function listNames(dir: string): string[] {
  try {
    return Array.from(Deno.readDirSync(dir), (e) => e.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

/** The capabilities a conf declares (a conflist's plugins' or a single conf's). */
function declaredCapabilities(conf: Record<string, unknown>): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  const entries = Array.isArray(conf.plugins) ? conf.plugins : [conf];
  for (const p of entries) {
    const caps = (p as Record<string, unknown> | null)?.capabilities;
    if (typeof caps !== "object" || caps === null) continue;
    for (const [k, v] of Object.entries(caps)) if (v === true) out[k] = true;
  }
  return out;
}

/**
 * The `cniVersion` podplex's conflist says when neither a flag nor a default conf names one:
 * the newest version that every runtime in the field reads. libcni before 1.2 (containerd
 * 1.6 and 1.7, CRI-O and podman built with it) refuses a 1.1.0 result ("unsupported CNI
 * result version"), so a node whose runtime is one of them would get no pod network at all.
 */
export const FALLBACK_CNI_VERSION = "1.0.0";

/**
 * The conflist's `cniVersion`: `--cni-version` when given, else the default network conf's
 * (the runtime already reads that one: Multus's entrypoint keeps it too), else
 * {@linkcode FALLBACK_CNI_VERSION}.
 */
export function conflistVersion(flag?: string, defaultConf?: DefaultConf): string {
  return flag ?? defaultConf?.cniVersion ?? FALLBACK_CNI_VERSION;
}

/**
 * The conflist text: podplex as the only plugin with `fields` (its conf from the ConfigMap
 * and flags), podplex's capabilities plus the default conf's (so the runtime passes them on,
 * as Multus nests its master's), and the default conf's bytes spliced in unchanged as the
 * inline `clusterNetwork`; the list's `cniVersion` is {@linkcode conflistVersion}'s.
 *
 * @param fields podplex conf fields; `clusterNetwork` there wins over `defaultConf` as the
 *   cluster network (the default conf then only lends its `cniVersion`)
 * @param cniVersion `--cni-version`, when given
 * @throws {CniError} code 7 when the result is a conf the meta-plugin would refuse
 */
export function buildConflist(
  fields: Record<string, unknown>,
  defaultConf?: DefaultConf,
  cniVersion = conflistVersion(undefined, defaultConf),
): string {
  const embedded = fields.clusterNetwork === undefined ? defaultConf : undefined;
  const capabilities = {
    ...(embedded ? declaredCapabilities(JSON.parse(embedded.text)) : {}),
    ...PODPLEX_CAPABILITIES,
  };
  const entry: Record<string, unknown> = { type: META_TYPE, ...fields, capabilities };
  const lines = Object.entries(entry).map(([k, v]) => `      ${JSON.stringify(k)}: ${j(v)}`);
  if (embedded) lines.push(`      "clusterNetwork": ${embedded.text.trim()}`);
  const text = `{\n  "cniVersion": ${JSON.stringify(cniVersion)},\n  "name": "podplex",\n` +
    `  "plugins": [\n    {\n${lines.join(",\n")}\n    }\n  ]\n}\n`;
  parsePodplexConf(JSON.parse(text));
  return text;
}

const j = (v: unknown) => JSON.stringify(v);

/** The service account as mounted into the DaemonSet's pod. */
export interface ServiceAccount {
  token: string;
  /** PEM text of the cluster CA (`ca.crt`). */
  ca: string;
}

/**
 * A kubeconfig that reaches the API server as the DaemonSet's service account, from the host:
 * `KUBERNETES_SERVICE_PROTOCOL` (default https), `_HOST` and `_PORT` from the pod's env, the
 * token and the CA embedded (the host cannot see the pod's mounts).
 *
 * @throws {CniError} code 7 naming KUBERNETES_SERVICE_HOST or _PORT when unset
 */
export function kubeconfigText(sa: ServiceAccount, env: Record<string, string | undefined>) {
  const [PROTOCOL, HOST, PORT] = SERVICE_ENV_VARS;
  const host = env[HOST];
  const port = env[PORT];
  for (const [k, v] of [[HOST, host], [PORT, port]]) {
    if (!v) {
      throw new CniError(
        Code.InvalidConfig,
        `Cannot write the kubeconfig: ${k} is not set (the service account's API server)`,
      );
    }
  }
  const proto = env[PROTOCOL] || "https";
  const server = `${proto}://${host!.includes(":") ? `[${host}]` : host}:${port}`;
  const ca = btoa(sa.ca); // PEM is ASCII
  return `# Written by podplex install from its service account; rewritten when the token or the
# CA changes.
apiVersion: v1
kind: Config
clusters:
  - name: local
    cluster:
      server: ${j(server)}
      certificate-authority-data: ${ca}
users:
  - name: podplex
    user:
      token: ${j(sa.token.trim())}
contexts:
  - name: podplex
    context:
      cluster: local
      user: podplex
current-context: podplex
`;
}

/**
 * Writes `text` to `path` through a temp file in the same dir and a rename: a runtime or a
 * CNI call reading it never sees half a file.
 */
export function writeAtomic(path: string, text: string, mode: number): Promise<void> {
  return writeFileAtomic(path, text, { mode, dirMode: 0o755 });
}
