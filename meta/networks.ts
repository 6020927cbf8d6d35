/**
 * Turns a network reference into the CNI conf text to run: first a local definition in
 * `networksDir/<ns>/<name>.{yaml,yml,json,conf,conflist}`, then a NetworkAttachmentDefinition
 * from the Kubernetes API. A NAD without `spec.config` names a conf on disk: the conf in
 * `confDir` whose `name` is the NAD's name (as Multus does).
 *
 * Conf text is kept byte for byte; the only edit ever made is inserting a missing `name`.
 *
 * File calls are synchronous (a CNI call has nothing to overlap them with, and each async
 * Deno file call is a thread-pool round trip), and a namespace's directory is listed once
 * per resolver instead of probing each extension with a read.
 *
 * @module
 */
import { jsonErrorSummary } from "../conf/bounded_read.ts";
import { type DefinitionFiles, DIRECT_FILES } from "./files.ts";
import { CniError, Code } from "../conf/errors.ts";
import { parseYaml } from "../conf/yaml.ts";
import { type NetworkRef, parseNetworkRef, RESOURCE_NAME_ANNOTATION } from "./annotations.ts";
import type { PodplexConf } from "./conf.ts";
import type { KubeClient } from "../clients/k8s/client.ts";
import { isObject } from "../conf/json.ts";

/** A network ready to run. */
export interface ResolvedNetwork {
  /** The reference it was resolved from. */
  ref: NetworkRef;
  /** Where its conf came from: a local definition, a NAD, the podplex conf, a conf file. */
  source: "file" | "nad" | "inline" | "conffile";
  /** "ns/name" as network-status shows NADs; for a conf file, the conf's name. */
  statusName: string;
  /** The CNI conf or conflist JSON text to run (a NAD's spec.config with a missing name set to the NAD's name). */
  confText: string;
  /** A NAD's `k8s.v1.cni.cncf.io/resourceName` annotation (its device plugin resource). */
  resourceName?: string;
}

/** Options of {@linkcode NetworkResolver.resolve}. */
export interface ResolveOptions {
  /**
   * Skip the namespaceIsolation check: for networks the admin named in the podplex conf
   * (clusterNetwork, defaultNetworks), which Multus does not restrict either.
   */
  skipIsolation?: boolean;
}

/** Looks networks up for one pod. */
export interface NetworkResolver {
  /** How it reads definitions and confs (default: directly). */
  readonly files?: DefinitionFiles;
  /**
   * @throws {CniError} code 100 naming every place searched; code 7 for a broken definition
   *   or a namespace the pod may not use; code 104 when the API fails
   */
  resolve(ref: NetworkRef, opts?: ResolveOptions): Promise<ResolvedNetwork>;
}

/** Options of {@linkcode createResolver}. */
export interface ResolverOptions {
  networksDir: string;
  confDir: string;
  api?: KubeClient;
  /** How definitions and confs are read (default: directly; the daemon: cached). */
  files?: DefinitionFiles;
  namespaceIsolation: boolean;
  globalNamespaces: string[];
  podNamespace: string;
}

const EXTENSIONS = ["yaml", "yml", "json", "conf", "conflist"] as const;
const CONF_FILE = /\.(conf|conflist|json)$/;
const NAD_KIND = "NetworkAttachmentDefinition";
/** A conf directory is searched by name only up to this many files (each is read). */
const MAX_CONF_FILES = 1000;

function bad(msg: string): CniError {
  return new CniError(Code.InvalidConfig, msg);
}

/** A definition or conf file: a regular file of bounded size (null when absent). */
function readIfExists(
  files: DefinitionFiles,
  path: string,
  what = "network definition",
): string | null {
  return files.read(path, what);
}

function parseJsonObject(text: string, where: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw bad(`Invalid CNI conf in ${where}: ${jsonErrorSummary(err)}`);
  }
  if (!isObject(v)) throw bad(`Invalid CNI conf in ${where}: not a JSON object`);
  return v;
}

/**
 * Checks a conf text and sets its `name` when missing. The name is inserted as the first key
 * so that every other byte stays as written.
 */
function withName(text: string, name: string, where: string): string {
  const obj = parseJsonObject(text, where);
  if (typeof obj.name === "string" && obj.name !== "") return text;
  if (obj.name !== undefined) throw bad(`Invalid "name" in ${where}: ${JSON.stringify(obj.name)}`);
  if (Object.keys(obj).length === 0) return JSON.stringify({ name });
  return text.replace(/^(\s*)\{/, `$1{"name":${JSON.stringify(name)},`);
}

/**
 * Finds the conf in `confDir` whose `name` is `name` (*.conf, *.conflist, *.json in name
 * order, as libcni lists them); null when none.
 */
function findConfByName(
  confDir: string,
  name: string,
  reader: DefinitionFiles,
): { path: string; text: string } | null {
  // A directory named like a conf is read as one below, refused, and skipped.
  const files = [...reader.list(confDir)].filter((n) => CONF_FILE.test(n));
  if (files.length > MAX_CONF_FILES) {
    throw bad(
      `Too many confs in "${confDir}": ${files.length} files; at most ${MAX_CONF_FILES} are searched`,
    );
  }
  for (const file of files.sort()) {
    const path = `${confDir}/${file}`;
    try {
      const text = readIfExists(reader, path, "network config");
      if (text !== null && JSON.parse(text)?.name === name) return { path, text };
    } catch {
      // Another network's broken file (not JSON, not a regular file, too large) is not this
      // lookup's problem (libcni skips unparsable ones too).
    }
  }
  return null;
}

/** Whether a parsed definition is a NetworkAttachmentDefinition rather than a plain conf. */
function isNad(obj: Record<string, unknown>): boolean {
  return obj.kind === NAD_KIND || (isObject(obj.spec) && isObject(obj.metadata));
}

async function parseDefinition(path: string, ext: string, text: string): Promise<unknown> {
  if (ext !== "yaml" && ext !== "yml") return parseJsonObject(text, `"${path}"`);
  try {
    return await parseYaml(text);
  } catch (err) {
    throw bad(`Invalid YAML in "${path}": ${(err as Error).message}`);
  }
}

/**
 * The spec.config of a NAD object (local or from the API), with its name filled in; when
 * the config is empty, the conf named like the NAD in confDir.
 */
function nadConfText(
  ref: NetworkRef,
  config: unknown,
  where: string,
  confDir: string,
  files: DefinitionFiles,
): string {
  if (config !== undefined && typeof config !== "string") {
    throw bad(`Invalid "spec.config" in ${where}: must be a string holding a CNI conf`);
  }
  if (config && config.trim() !== "") return withName(config, ref.name, where);
  const found = findConfByName(confDir, ref.name, files);
  if (!found) {
    throw new CniError(
      Code.NetworkNotFound,
      `Network "${ref.namespace}/${ref.name}": ${where} has no "spec.config" and no conf named ` +
        `"${ref.name}" is in "${confDir}"`,
    );
  }
  return found.text;
}

async function fromLocalFile(
  ref: NetworkRef,
  path: string,
  ext: string,
  text: string,
  confDir: string,
  files: DefinitionFiles,
): Promise<{ confText: string; resourceName?: string }> {
  const def = await parseDefinition(path, ext, text);
  if (!isObject(def)) throw bad(`Invalid network definition "${path}": not an object`);
  if (!isNad(def)) {
    // A plain conf or conflist; YAML ones are turned into JSON, JSON ones kept as written.
    const json = ext === "yaml" || ext === "yml" ? JSON.stringify(def) : text;
    return { confText: withName(json, ref.name, `"${path}"`) };
  }
  const meta = isObject(def.metadata) ? def.metadata : {};
  for (const [key, want] of [["name", ref.name], ["namespace", ref.namespace]]) {
    if (meta[key] !== undefined && meta[key] !== want) {
      throw bad(
        `Invalid "metadata.${key}" in "${path}": ${JSON.stringify(meta[key])}, expected "${want}"`,
      );
    }
  }
  const spec = isObject(def.spec) ? def.spec : {};
  const confText = nadConfText(ref, spec.config, `"${path}"`, confDir, files);
  return { confText, ...resourceNameOf(meta.annotations) };
}

/** The device plugin resource a NAD's annotations name, as `{ resourceName }` or nothing. */
function resourceNameOf(annotations: unknown): { resourceName?: string } {
  const v = isObject(annotations) ? annotations[RESOURCE_NAME_ANNOTATION] : undefined;
  return typeof v === "string" && v !== "" ? { resourceName: v } : {};
}

/**
 * Creates the resolver for one pod.
 *
 * @example
 * ```ts
 * const resolver = createResolver({ networksDir, confDir, api, namespaceIsolation: false,
 *   globalNamespaces: [], podNamespace: "default" });
 * const net = await resolver.resolve({ namespace: "default", name: "macvlan-conf" });
 * ```
 */
export function createResolver(opts: ResolverOptions): NetworkResolver {
  const files = opts.files ?? DIRECT_FILES;
  // File names per namespace directory, listed on first use (a pod's networks mostly share one).
  const listings = new Map<string, Set<string>>();

  function namesIn(namespace: string): Set<string> {
    let names = listings.get(namespace);
    if (!names) listings.set(namespace, names = files.list(`${opts.networksDir}/${namespace}`));
    return names;
  }

  function checkIsolation(ref: NetworkRef): void {
    if (!opts.namespaceIsolation || ref.namespace === opts.podNamespace) return;
    if (opts.globalNamespaces.includes(ref.namespace)) return;
    const globals = opts.globalNamespaces.map((n) => `"${n}"`).join(", ") || "none";
    throw bad(
      `Network "${ref.namespace}/${ref.name}" is in namespace "${ref.namespace}", which pods in ` +
        `namespace "${opts.podNamespace}" may not use (namespaceIsolation; global namespaces: ${globals})`,
    );
  }

  return {
    files,
    async resolve(ref, ropts = {}) {
      if (!ropts.skipIsolation) checkIsolation(ref);
      const statusName = `${ref.namespace}/${ref.name}`;
      const searched: string[] = [];
      const names = namesIn(ref.namespace);
      for (const ext of EXTENSIONS) {
        const path = `${opts.networksDir}/${ref.namespace}/${ref.name}.${ext}`;
        searched.push(`"${path}"`);
        if (!names.has(`${ref.name}.${ext}`)) continue;
        const text = readIfExists(files, path);
        if (text === null) continue;
        const local = await fromLocalFile(ref, path, ext, text, opts.confDir, files);
        return { ref, source: "file", statusName, ...local };
      }
      const nadPlace = `NetworkAttachmentDefinition "${statusName}" in the Kubernetes API`;
      if (opts.api) {
        searched.push(nadPlace);
        const nad = await opts.api.getNad(ref.namespace, ref.name);
        if (nad) {
          const confText = nadConfText(ref, nad.config, nadPlace, opts.confDir, files);
          return { ref, source: "nad", statusName, confText, ...resourceNameOf(nad.annotations) };
        }
      } else {
        searched.push(`(no Kubernetes API configured, so no ${nadPlace})`);
      }
      throw new CniError(
        Code.NetworkNotFound,
        `Network "${statusName}" not found; searched ${searched.join(", ")}`,
      );
    },
  };
}

/** A clusterNetwork conf file: the text byte for byte, named by its `name`. */
function fromConfFile(conf: PodplexConf, file: string, files: DefinitionFiles): ResolvedNetwork {
  const path = file.startsWith("/") ? file : `${conf.confDir}/${file}`;
  const text = readIfExists(files, path, "cluster network conf");
  if (text === null) {
    throw new CniError(Code.NetworkNotFound, `Cluster network conf file "${path}" not found`);
  }
  const obj = parseJsonObject(text, `"${path}"`);
  if (typeof obj.name !== "string" || obj.name === "") {
    throw bad(`Invalid cluster network conf "${path}": no "name"`);
  }
  const ref = { namespace: conf.defaultNetworkNamespace, name: obj.name };
  return { ref, source: "conffile", statusName: obj.name, confText: text };
}

function inline(conf: PodplexConf, obj: Record<string, unknown>): ResolvedNetwork {
  if (typeof obj.name !== "string" || obj.name === "") {
    throw bad(`Invalid "clusterNetwork": the inline conf has no "name"`);
  }
  const ref = { namespace: conf.defaultNetworkNamespace, name: obj.name };
  return { ref, source: "inline", statusName: obj.name, confText: JSON.stringify(obj) };
}

/**
 * Resolves the podplex conf's `clusterNetwork`: an inline conf object, a conf file (a name
 * ending in .conf/.conflist/.json looked up in confDir, or an absolute path), or a network
 * `ns/name` / `name` (in defaultNetworkNamespace). A plain name that is no network is also
 * looked for as a conf `name` in confDir, as Multus does for its clusterNetwork.
 *
 * Namespace isolation does not apply: the admin chose this network.
 *
 * @returns undefined when the conf names no cluster network
 * @throws {CniError} code 100 when it cannot be found, code 7 when it is malformed
 */
export async function resolveClusterNetwork(
  conf: PodplexConf,
  resolver: NetworkResolver,
): Promise<ResolvedNetwork | undefined> {
  const cn = conf.clusterNetwork;
  if (cn === undefined) return undefined;
  if (typeof cn !== "string") return inline(conf, cn);
  if (cn.startsWith("/") || CONF_FILE.test(cn)) {
    return fromConfFile(conf, cn, resolver.files ?? DIRECT_FILES);
  }
  const ref = parseNetworkRef(cn, conf.defaultNetworkNamespace, "clusterNetwork");
  try {
    return await resolver.resolve(ref, { skipIsolation: true });
  } catch (err) {
    if (!(err instanceof CniError) || err.code !== Code.NetworkNotFound || cn.includes("/")) {
      throw err;
    }
    const found = findConfByName(conf.confDir, cn, resolver.files ?? DIRECT_FILES);
    if (!found) {
      throw new CniError(
        Code.NetworkNotFound,
        `${err.message}, and the confs in "${conf.confDir}" for one named "${cn}"`,
        err.details,
      );
    }
    return { ref, source: "conffile", statusName: cn, confText: found.text };
  }
}
