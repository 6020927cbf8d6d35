/**
 * podplex's own conf: the one plugin entry of `type: "podplex"` that a runtime hands it.
 * Validated by hand (no schema library) because it is read on every CNI call and the
 * messages must name the exact field.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { resolveIn } from "../conf/paths.ts";
import {
  compareVersions,
  IMPLICIT_VERSION,
  isSupported,
  requireSupported,
} from "../conf/version.ts";
import { isObject } from "../conf/json.ts";

/** The `type` of podplex's own conf entry (the meta-plugin). */
export const META_TYPE = "podplex";

/** The parsed podplex conf with defaults applied. */
export interface PodplexConf {
  /** The effective version (results and errors are in it). */
  cniVersion: string;
  /** The network name of the conflist. */
  name: string;
  /** Always `podplex`. */
  type: "podplex";
  /** Network name ("ns/name" or "name"), a conf file name/path, or an inline conf object. */
  clusterNetwork?: string | Record<string, unknown>;
  /** Where names without a namespace (clusterNetwork, defaultNetworks, default-network) live. */
  defaultNetworkNamespace: string;
  /** Networks every pod gets after the cluster network (skipped in systemNamespaces). */
  defaultNetworks: string[];
  /** Local network definitions, `<networksDir>/<ns>/<name>.{yaml,yml,json,conf,conflist}`. */
  networksDir: string;
  /**
   * Local network policies, `<policiesDir>/<ns>/*.{yaml,yml,json}` (NetworkPolicy,
   * MultiNetworkPolicy, Namespace for its labels); enforced when the folder exists.
   */
  policiesDir: string;
  /** Attachment state for DEL/CHECK/GC. */
  stateDir: string;
  /** Where a clusterNetwork conf file name is looked up. */
  confDir: string;
  /** A kubeconfig for the API server (NADs, pods, network-status); none: local only. */
  kubeconfig?: string;
  /** A pod may only use networks of its own namespace and of `globalNamespaces`. */
  namespaceIsolation: boolean;
  /** Namespaces whose networks every pod may use under `namespaceIsolation`. */
  globalNamespaces: string[];
  /** Namespaces whose pods do not get `defaultNetworks`. */
  systemNamespaces: string[];
  /** ADD waits for this file; STATUS fails while it is missing. */
  readinessIndicatorFile?: string;
  /** `merged`: every attachment's result; `cluster`: the cluster network's alone. */
  resultMode: "merged" | "cluster";
  /** The least severe level logged. */
  logLevel: "error" | "warning" | "info" | "debug";
  /** Where the log goes (default: stderr). */
  logFile?: string;
  /** `text` (default) or `json`: one JSON object a line. */
  logFormat: "text" | "json";
  /** The capabilities podplex takes from the runtime. */
  capabilities?: Record<string, boolean>;
  /** Delegate types to exec as external binaries instead of the built-in. */
  preferExternal?: string[];
  /** podplex's own capability arguments from the runtime. */
  runtimeConfig?: Record<string, unknown>;
  /** `args` of the conf, as received. */
  args?: Record<string, unknown>;
  /** `prevResult` of the conf, as received. */
  prevResult?: unknown;
  /** The plugin entry as received (for a conflist: with the list's name and cniVersion). */
  raw: Record<string, unknown>;
}

/** Defaults, as DESIGN.md's "Where things live on a node" table gives them. */
export const CONF_DEFAULTS = {
  defaultNetworkNamespace: "kube-system",
  networksDir: "/etc/cni/podplex/networks.d",
  policiesDir: "/etc/cni/podplex/policies.d",
  stateDir: "/var/lib/cni/podplex",
  confDir: "/etc/cni/net.d",
  systemNamespaces: ["kube-system"],
  resultMode: "merged",
  logLevel: "warning",
  logFormat: "text",
} as const;

// Keys the spec reserves or that runtimes add; accepted (and ignored where podplex has no use).
const RESERVED = new Set([
  "cniVersion",
  "cniVersions",
  "name",
  "type",
  "args",
  "ipMasq",
  "ipam",
  "dns",
  "runtimeConfig",
  "prevResult",
  "disableCheck",
  "disableGC",
  "plugins",
  "capabilities",
]);

const OWN = new Set([
  "clusterNetwork",
  "defaultNetworkNamespace",
  "defaultNetworks",
  "networksDir",
  "policiesDir",
  "stateDir",
  "confDir",
  "kubeconfig",
  "namespaceIsolation",
  "globalNamespaces",
  "systemNamespaces",
  "readinessIndicatorFile",
  "resultMode",
  "logLevel",
  "logFile",
  "logFormat",
  "preferExternal",
]);

const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;

function bad(msg: string): CniError {
  return new CniError(Code.InvalidConfig, msg);
}

function str(raw: Record<string, unknown>, key: string): string | undefined {
  const v = raw[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v === "") {
    throw bad(`Invalid "${key}": ${JSON.stringify(v)} is not a non-empty string`);
  }
  return v;
}

function strList(raw: Record<string, unknown>, key: string): string[] | undefined {
  const v = raw[key];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string" || s === "")) {
    throw bad(`Invalid "${key}": ${JSON.stringify(v)} is not a list of non-empty strings`);
  }
  return v as string[];
}

/** Kubernetes namespace names: DNS-1123 labels of at most 63 characters. */
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** A namespace field (or list of them): each a Kubernetes namespace name. */
function namespaces(key: string, list: string[] | undefined): string[] | undefined {
  for (const ns of list ?? []) {
    if (!NAMESPACE.test(ns)) {
      throw bad(
        `Invalid "${key}": ${JSON.stringify(ns)} is not a namespace name (a DNS-1123 label)`,
      );
    }
  }
  return list;
}

function bool(raw: Record<string, unknown>, key: string): boolean | undefined {
  const v = raw[key];
  if (v === undefined) return undefined;
  if (typeof v !== "boolean") {
    throw bad(`Invalid "${key}": ${JSON.stringify(v)} is not true or false`);
  }
  return v;
}

function obj(raw: Record<string, unknown>, key: string): Record<string, unknown> | undefined {
  const v = raw[key];
  if (v === undefined) return undefined;
  if (!isObject(v)) throw bad(`Invalid "${key}": ${JSON.stringify(v)} is not an object`);
  return v;
}

function oneOf<T extends string>(
  raw: Record<string, unknown>,
  key: string,
  allowed: readonly T[],
): T | undefined {
  const v = raw[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) {
    throw bad(
      `Invalid "${key}": ${JSON.stringify(v)} is not one of ${
        allowed.map((a) => `"${a}"`).join(", ")
      }`,
    );
  }
  return v as T;
}

/** Rejects unknown keys so that a typo cannot pass silently. */
function rejectUnknown(raw: Record<string, unknown>): void {
  for (const key of Object.keys(raw)) {
    if (RESERVED.has(key) || OWN.has(key) || key.startsWith("cni.dev/")) continue;
    throw bad(`Unknown field "${key}" in the podplex conf`);
  }
}

/** Highest supported version of `cniVersion` ∪ `cniVersions` (libcni's rule). */
function pickVersion(raw: Record<string, unknown>): string {
  const listed = raw.cniVersions;
  if (
    listed !== undefined && (!Array.isArray(listed) || listed.some((v) => typeof v !== "string"))
  ) {
    throw bad(`Invalid "cniVersions": ${JSON.stringify(listed)} is not a list of versions`);
  }
  const single = raw.cniVersion;
  if (single !== undefined && typeof single !== "string") {
    throw bad(`Invalid "cniVersion": ${JSON.stringify(single)} is not a string`);
  }
  const candidates = [...((listed as string[] | undefined) ?? []), ...(single ? [single] : [])];
  if (candidates.length === 0) return IMPLICIT_VERSION;
  const supported = candidates.filter(isSupported);
  if (supported.length === 0) return requireSupported(single ?? candidates[0]);
  return supported.sort(compareVersions)[supported.length - 1];
}

/** Takes the first plugin of a conflist, with the list's name and cniVersion injected. */
function entryOf(raw: Record<string, unknown>): Record<string, unknown> {
  if (raw.plugins === undefined) return raw;
  const plugins = raw.plugins;
  if (!Array.isArray(plugins) || plugins.length === 0 || !isObject(plugins[0])) {
    throw bad(`Invalid "plugins": the podplex conflist needs a first plugin object`);
  }
  const entry: Record<string, unknown> = { ...plugins[0], name: raw.name };
  const version = pickVersion(raw);
  if (raw.cniVersion !== undefined || raw.cniVersions !== undefined) entry.cniVersion = version;
  return entry;
}

function capabilitiesOf(raw: Record<string, unknown>): Record<string, boolean> | undefined {
  const caps = obj(raw, "capabilities");
  if (!caps) return undefined;
  for (const [k, v] of Object.entries(caps)) {
    if (typeof v !== "boolean") {
      throw bad(`Invalid "capabilities.${k}": ${JSON.stringify(v)} is not true or false`);
    }
  }
  return caps as Record<string, boolean>;
}

function clusterNetworkOf(
  raw: Record<string, unknown>,
): string | Record<string, unknown> | undefined {
  const v = raw.clusterNetwork;
  if (v === undefined || isObject(v)) return v;
  return str(raw, "clusterNetwork");
}

/**
 * Parses podplex's conf from a conf object, or from a conflist whose first plugin is podplex
 * (then `name` and `cniVersion` come from the list), and applies the defaults.
 *
 * @example
 * ```ts
 * const conf = parsePodplexConf({ cniVersion: "1.1.0", name: "pods", type: "podplex",
 *   clusterNetwork: "kube-system/flannel" });
 * conf.stateDir; // "/var/lib/cni/podplex"
 * ```
 * @throws {CniError} code 7 naming the field at fault (unknown fields included); code 1 for
 *   an unsupported cniVersion
 */
export function parsePodplexConf(raw: Record<string, unknown>, cwd?: string): PodplexConf {
  if (!isObject(raw)) throw bad("The podplex conf is not a JSON object");
  const entry = entryOf(raw);
  if (entry.type !== META_TYPE) {
    throw bad(`Invalid "type": ${JSON.stringify(entry.type)}, expected "${META_TYPE}"`);
  }
  rejectUnknown(entry);
  const name = entry.name;
  if (typeof name !== "string" || !NETWORK_NAME.test(name)) {
    throw bad(`Invalid "name": ${JSON.stringify(name)} must match ${NETWORK_NAME.source}`);
  }
  const conf: PodplexConf = {
    cniVersion: pickVersion(entry),
    name,
    type: META_TYPE,
    clusterNetwork: clusterNetworkOf(entry),
    defaultNetworkNamespace: namespaces("defaultNetworkNamespace", [
      str(entry, "defaultNetworkNamespace") ?? CONF_DEFAULTS.defaultNetworkNamespace,
    ])![0],
    defaultNetworks: strList(entry, "defaultNetworks") ?? [],
    networksDir: path(entry, "networksDir", cwd) ?? CONF_DEFAULTS.networksDir,
    policiesDir: path(entry, "policiesDir", cwd) ?? CONF_DEFAULTS.policiesDir,
    stateDir: path(entry, "stateDir", cwd) ?? CONF_DEFAULTS.stateDir,
    confDir: path(entry, "confDir", cwd) ?? CONF_DEFAULTS.confDir,
    kubeconfig: path(entry, "kubeconfig", cwd),
    namespaceIsolation: bool(entry, "namespaceIsolation") ?? false,
    globalNamespaces: namespaces("globalNamespaces", strList(entry, "globalNamespaces")) ??
      [],
    systemNamespaces: namespaces("systemNamespaces", strList(entry, "systemNamespaces")) ??
      [...CONF_DEFAULTS.systemNamespaces],
    readinessIndicatorFile: path(entry, "readinessIndicatorFile", cwd),
    resultMode: oneOf(entry, "resultMode", ["merged", "cluster"] as const) ??
      CONF_DEFAULTS.resultMode,
    logLevel: oneOf(entry, "logLevel", ["error", "warning", "info", "debug"] as const) ??
      CONF_DEFAULTS.logLevel,
    logFile: path(entry, "logFile", cwd),
    logFormat: oneOf(entry, "logFormat", ["text", "json"] as const) ?? CONF_DEFAULTS.logFormat,
    capabilities: capabilitiesOf(entry),
    preferExternal: strList(entry, "preferExternal"),
    runtimeConfig: obj(entry, "runtimeConfig"),
    args: obj(entry, "args"),
    prevResult: entry.prevResult,
    raw: entry,
  };
  return dropUndefined(conf);
}

/** A path field, resolved against the caller's working directory when one is given. */
function path(entry: Record<string, unknown>, key: string, cwd?: string): string | undefined {
  const p = str(entry, key);
  return p === undefined ? undefined : resolveIn(cwd, p);
}

function dropUndefined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}
