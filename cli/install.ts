/**
 * `podplex install`: the DaemonSet's entrypoint, doing what Multus's thin entrypoint does.
 * It copies the node artifact it runs from into the host's CNI bin dir atomically
 * (`_install_artifact.ts`), waits for the node's default network conf and writes
 * `00-podplex.conflist` wrapping it as the cluster network, and writes a kubeconfig from the
 * pod's service account (`_install_conf.ts`). With `--watch` it keeps both current (token or
 * CA rotation, a changed or new default conf) and, with `--cleanup-config-on-exit`, removes
 * what it wrote on SIGTERM so the node falls back to its default network.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { parseYaml } from "../conf/yaml.ts";
import { isSupported, SUPPORTED_VERSIONS } from "../conf/version.ts";
import { BUILTIN_TYPES } from "../delegates/catalog.ts";
import { SA_DIR } from "../clients/k8s/client.ts";
import { guard, parseFlags, UsageError } from "./_args.ts";
import { out } from "./_output.ts";
import { DEFAULT_CNI_PATH, INSTALLED_CONF } from "./_config.ts";
import { installArtifact, runningArtifact } from "./_install_artifact.ts";
import {
  buildConflist,
  CONFLIST_NAME,
  conflistVersion,
  type DefaultConf,
  FALLBACK_CNI_VERSION,
  findDefaultConf,
  KUBECONFIG_HOST_PATH,
  KUBECONFIG_SUBPATH,
  kubeconfigText,
  writeAtomic,
} from "./_install_conf.ts";

/** Where runtimes read CNI confs: `--conf-dir`'s default (the dir of the installed conflist). */
export const DEFAULT_CONF_DIR = INSTALLED_CONF.slice(0, INSTALLED_CONF.lastIndexOf("/"));
/** The CNI plugin dir: `--bin-dir`'s default (the first dir of the default CNI_PATH). */
export const DEFAULT_BIN_DIR = DEFAULT_CNI_PATH.split(":")[0];

/** How often `--watch` looks at the token, the CA and the default conf. */
export const POLL_MS = 1000;

/** The flags, by name: what deploy/ may pass (the drift test reads this table). */
export const INSTALL_FLAGS = {
  "conf-dir": { type: "string" },
  "bin-dir": { type: "string" },
  "default-network-file": { type: "string" },
  "podplex-conf": { type: "string" },
  "service-account-dir": { type: "string" },
  "kubeconfig-file-host": { type: "string" },
  kubeconfig: { type: "string" },
  "cluster-network": { type: "string" },
  "cni-version": { type: "string" },
  "default-network": { type: "string", multiple: true },
  "networks-dir": { type: "string" },
  "state-dir": { type: "string" },
  "namespace-isolation": { type: "boolean" },
  "global-namespaces": { type: "string" },
  "readiness-indicator-file": { type: "string" },
  "log-level": { type: "string" },
  "log-file": { type: "string" },
  builtins: { type: "boolean" },
  watch: { type: "boolean" },
  "cleanup-config-on-exit": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

const HELP = `usage: podplex install [flags]

Copies the podplex artifact this runs from into <bin-dir> (podplex + podplex.d/<version>/,
atomically), waits for the node's default network conf (the alphabetically first .conf or
.conflist in <conf-dir> other than ${CONFLIST_NAME}) and writes <conf-dir>/${CONFLIST_NAME}
with it as the cluster network (its bytes and cniVersion kept). When the service account's
token is mounted, writes <conf-dir>/${KUBECONFIG_SUBPATH} (0600) from it and
KUBERNETES_SERVICE_HOST/PORT. Without --watch it exits once both are written.

Flags:
  --conf-dir DIR                 the CNI conf dir as mounted (default ${DEFAULT_CONF_DIR})
  --bin-dir DIR                  the CNI bin dir as mounted (default ${DEFAULT_BIN_DIR})
  --default-network-file NAME    the default network conf's file name in --conf-dir
  --podplex-conf FILE            podplex conf fields (JSON or YAML, e.g. a ConfigMap's file);
                                 the flags below override them
  --service-account-dir DIR      default ${SA_DIR}
  --kubeconfig-file-host PATH    the kubeconfig's path on the host, named in the conflist
                                 (default ${KUBECONFIG_HOST_PATH})
  --kubeconfig FILE              use this kubeconfig instead of the service account's
  --cluster-network X            an explicit cluster network ("ns/name", a conf file name):
                                 no waiting for, nor embedding of, the default conf
  --cni-version V                the conflist's cniVersion (default: the default network
                                 conf's, else ${FALLBACK_CNI_VERSION}); podplex converts every result
                                 to it. Runtimes read up to: containerd 1.6/1.7, CRI-O and
                                 podman on libcni < 1.2: 1.0.0; libcni 1.2+ (containerd 2.x):
                                 1.1.0. A version the runtime cannot read fails every pod
  --default-network NS/N         a network every pod gets (repeatable)
  --networks-dir DIR, --state-dir DIR
  --namespace-isolation          pods use only networks of their namespace (and global ones)
  --global-namespaces A,B        namespaces whose networks every pod may use
  --readiness-indicator-file F   ADD waits for this file (the default network's readiness)
  --log-level LEVEL, --log-file FILE
  --builtins                     also link ${BUILTIN_TYPES.join(", ")} to podplex
  --watch                        keep running: rewrite the kubeconfig on token/CA change
                                 and the conflist when the default conf changes
  --cleanup-config-on-exit       with --watch: on SIGTERM remove the conflist and kubeconfig
`;

type Flags = ReturnType<typeof parseFlags<typeof INSTALL_FLAGS>>["values"];

/** The podplex conf fields: the --podplex-conf file's, then the flags'. */
async function podplexFields(f: Flags): Promise<Record<string, unknown>> {
  let fields: Record<string, unknown> = {};
  if (f["podplex-conf"]) fields = await readFieldsFile(f["podplex-conf"]);
  const set = (k: string, v: unknown) => {
    if (v !== undefined) fields[k] = v;
  };
  set("clusterNetwork", f["cluster-network"]);
  set("defaultNetworks", f["default-network"]);
  set("networksDir", f["networks-dir"]);
  set("stateDir", f["state-dir"]);
  set("kubeconfig", f.kubeconfig);
  set("namespaceIsolation", f["namespace-isolation"]);
  set("globalNamespaces", f["global-namespaces"]?.split(",").map((s) => s.trim()).filter(Boolean));
  set("readinessIndicatorFile", f["readiness-indicator-file"]);
  set("logLevel", f["log-level"]);
  set("logFile", f["log-file"]);
  return fields;
}

/** A conf file's podplex fields: a bare object, a podplex conf, or a conflist's first plugin. */
async function readFieldsFile(path: string): Promise<Record<string, unknown>> {
  const text = await Deno.readTextFile(path);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    doc = await parseYaml(text);
  }
  const obj = doc as Record<string, unknown> | null;
  const entry = Array.isArray(obj?.plugins) ? obj.plugins[0] : obj;
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
    throw new CniError(Code.InvalidConfig, `Invalid podplex conf "${path}": not an object`);
  }
  const { cniVersion: _v, name: _n, type: _t, capabilities: _c, ...fields } = entry as Record<
    string,
    unknown
  >;
  return fields;
}

/** What one pass wants on disk, and the files it owns. */
interface Paths {
  confDir: string;
  conflist: string;
  kubeconfig: string;
  saDir: string;
  defaultFile?: string;
  /** `--cni-version`, when given. */
  cniVersion?: string;
  /** Whether the kubeconfig is podplex's to write (a service account token is mounted). */
  ownKubeconfig: boolean;
}

async function readOrNull(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** Rewrites `path` when its content differs from `text`; says whether it did. */
async function sync(path: string, text: string, mode: number): Promise<boolean> {
  if ((await readOrNull(path)) === text) return false;
  await writeAtomic(path, text, mode);
  return true;
}

/** The service account's kubeconfig, or undefined when no token is mounted. */
async function wantedKubeconfig(p: Paths): Promise<string | undefined> {
  const token = await readOrNull(`${p.saDir}/token`);
  if (token === null) return undefined;
  const ca = (await readOrNull(`${p.saDir}/ca.crt`)) ?? "";
  return kubeconfigText({ token, ca }, Deno.env.toObject());
}

/** One pass: writes what changed; says whether the conflist is in place. */
async function pass(p: Paths, fields: Record<string, unknown>, log: Logger): Promise<boolean> {
  const kube = p.ownKubeconfig ? await wantedKubeconfig(p) : undefined;
  if (kube !== undefined && await sync(p.kubeconfig, kube, 0o600)) log(`wrote ${p.kubeconfig}`);
  let def: DefaultConf | undefined;
  if (fields.clusterNetwork !== undefined) def = versionSource(p);
  else {
    def = findDefaultConf(p.confDir, p.defaultFile);
    if (!def) {
      const have = (await readOrNull(p.conflist)) !== null;
      log(
        have
          ? `the default network conf is gone from "${p.confDir}": keeping ${p.conflist}`
          : `waiting for the default network conf in "${p.confDir}"`,
      );
      return have;
    }
  }
  const version = conflistVersion(p.cniVersion, def);
  const text = buildConflist(fields, def, version);
  if (await sync(p.conflist, text, 0o644)) {
    const from = fields.clusterNetwork === undefined && def ? `, cluster network: ${def.path}` : "";
    log(`wrote ${p.conflist} (cniVersion ${version}${from})`);
  }
  return true;
}

/**
 * With an explicit cluster network, the default network conf (when one is there) still names
 * the version the node's runtime reads; one that cannot be read lends nothing.
 */
function versionSource(p: Paths): DefaultConf | undefined {
  try {
    return findDefaultConf(p.confDir, p.defaultFile);
  } catch (e) {
    if (e instanceof CniError) return undefined;
    throw e;
  }
}

type Logger = (line: string) => void;

/** Prints a line once until a different one comes (a watch loop repeats itself). */
function onceLogger(): Logger {
  let last = "";
  return (line) => {
    if (line === last) return;
    last = line;
    out(`podplex install: ${line}\n`);
  };
}

/** Resolves on SIGTERM or SIGINT; `dispose` removes the listeners. */
function stopSignal(): { stopped: Promise<Deno.Signal>; dispose: () => void } {
  let resolve!: (s: Deno.Signal) => void;
  const stopped = new Promise<Deno.Signal>((r) => (resolve = r));
  const sigs: Deno.Signal[] = ["SIGTERM", "SIGINT"];
  const handlers = sigs.map((s) => [s, () => resolve(s)] as const);
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);
  return { stopped, dispose: () => handlers.forEach(([s, h]) => Deno.removeSignalListener(s, h)) };
}

async function loop(
  p: Paths,
  fields: Record<string, unknown>,
  f: Flags,
  stopped: Promise<Deno.Signal>,
): Promise<number> {
  const log = onceLogger();
  let signal: Deno.Signal | undefined;
  stopped.then((s) => (signal = s));
  while (signal === undefined) {
    let ready = false;
    try {
      ready = await pass(p, fields, log);
    } catch (e) {
      if (!f.watch || !(e instanceof CniError)) throw e;
      log(`${e.message}; retrying`); // e.g. a default conf caught half-written
    }
    if (ready && !f.watch) return 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([stopped, new Promise((r) => (timer = setTimeout(r, POLL_MS)))]);
    clearTimeout(timer);
  }
  log(`${signal}: stopping`);
  if (f.watch && f["cleanup-config-on-exit"]) {
    for (const path of [p.conflist, p.kubeconfig]) {
      if (path === p.kubeconfig && !p.ownKubeconfig) continue;
      if (await Deno.remove(path).then(() => true, () => false)) log(`removed ${path}`);
    }
  }
  return 0;
}

/** Entry of `podplex install`. */
export async function main(argv: string[]): Promise<number> {
  // Listening from the start: a SIGTERM during the copy ends the run between two steps.
  const { stopped, dispose } = stopSignal();
  try {
    return await install(argv, stopped);
  } finally {
    dispose();
  }
}

function install(argv: string[], stopped: Promise<Deno.Signal>): Promise<number> {
  return guard("podplex install", async () => {
    const { values: f, positionals } = parseFlags(argv, INSTALL_FLAGS);
    if (f.help) return (out(HELP), 0);
    if (positionals.length) throw new UsageError(`"install" takes no arguments`);
    if (f["cleanup-config-on-exit"] && !f.watch) {
      throw new UsageError(`--cleanup-config-on-exit needs --watch`);
    }
    const cniVersion = f["cni-version"];
    if (cniVersion !== undefined && !isSupported(cniVersion)) {
      throw new UsageError(
        `--cni-version "${cniVersion}" is not a CNI version podplex speaks ` +
          `(${SUPPORTED_VERSIONS.join(", ")})`,
      );
    }
    const fields = await podplexFields(f);
    buildConflist(fields); // refuse a bad ConfigMap or flag before touching the host
    const confDir = (f["conf-dir"] ?? DEFAULT_CONF_DIR).replace(/\/+$/, "");
    const binDir = (f["bin-dir"] ?? DEFAULT_BIN_DIR).replace(/\/+$/, "");
    if (!(await Deno.stat(confDir).then((s) => s.isDirectory, () => false))) {
      throw new Error(`Cannot install into "${confDir}": no such directory`);
    }
    const art = runningArtifact();
    if (!art) {
      throw new Error(
        `Cannot install from the sources: run the node artifact (deno task build; dist/node/podplex)`,
      );
    }
    const done = await installArtifact(art, binDir, f.builtins ? BUILTIN_TYPES : []);
    out(
      `podplex install: ${done.entry} runs payload ${done.version}` +
        `${done.copiedPayload ? " (copied)" : " (already there)"}` +
        `${done.pruned.length ? `, pruned ${done.pruned.join(", ")}` : ""}\n`,
    );
    const saDir = f["service-account-dir"] ?? SA_DIR;
    const ownKubeconfig = fields.kubeconfig === undefined &&
      (await readOrNull(`${saDir}/token`)) !== null;
    if (ownKubeconfig) fields.kubeconfig = f["kubeconfig-file-host"] ?? KUBECONFIG_HOST_PATH;
    const paths: Paths = {
      confDir,
      conflist: `${confDir}/${CONFLIST_NAME}`,
      kubeconfig: `${confDir}/${KUBECONFIG_SUBPATH}`,
      saDir,
      defaultFile: f["default-network-file"],
      cniVersion,
      ownKubeconfig,
    };
    return await loop(paths, fields, f, stopped);
  });
}
