/**
 * The chain runner: runs the plugins of a conflist as libcni does (libcni/api.go
 * AddNetworkList, DelNetworkList, CheckNetworkList, GCNetworkList, GetStatusNetworkList).
 *
 * Each plugin gets its conf with the list's `name` and `cniVersion` injected, `runtimeConfig`
 * (its true `capabilities` ∩ the runtime's capability args) and `prevResult`:
 * - ADD: in order, each plugin gets the previous plugin's result; stops at the first error
 *   (rolling back is the caller's decision);
 * - DEL: in reverse, each plugin gets the cached final ADD result (version >= 0.4.0);
 *   stops at the first error, as libcni does;
 * - CHECK: in order with the cached result; refused below 0.4.0; skipped with `disableCheck`;
 * - GC (>= 1.1.0, unless `disableGC`): every plugin, with `cni.dev/valid-attachments` (and
 *   the older `cni.dev/attachments`); keeps going and reports every error;
 * - STATUS (>= 1.1.0): every plugin; the first error is returned.
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import { type ConfList, injectConf, type PluginEntry } from "../../conf/netconf.ts";
import { convertResult, toCanonical } from "../../conf/result.ts";
import type { Attachment, CniResult, Verb } from "../../conf/types.ts";
import { atLeast } from "../../conf/version.ts";
import type { PluginEnv, PluginRegistry, PluginRequest } from "../types.ts";

/** Options of {@linkcode runChain}. */
export interface ChainOptions {
  /** The CNI_* environment (GC and STATUS only use `path`). */
  env: PluginEnv;
  registry: PluginRegistry;
  /** The runtime's capability args (keys matched case-insensitively). */
  capabilityArgs?: Record<string, unknown>;
  /** ADD: a result the first plugin gets as prevResult (rarely used). */
  prevResult?: CniResult;
  /** DEL/CHECK: the final result of the ADD, given to every plugin as prevResult. */
  cachedResult?: CniResult;
  /** GC: the attachments that are still in use. */
  validAttachments?: Attachment[];
  timeoutMs?: number;
  linkGroup?: number;
}

/** What a chain produced. */
export interface ChainOutcome {
  /** ADD: the final result in canonical form. */
  result?: CniResult;
  /** ADD: the final result in the list's `cniVersion`. */
  json?: Record<string, unknown>;
}

/**
 * Inner field names of the CONVENTIONS capabilities. containerd marshals Go structs without
 * JSON tags, so they can arrive as `HostPort`; they are renamed to these spellings.
 */
const CAPABILITY_FIELDS: Record<string, readonly string[]> = {
  portMappings: ["hostPort", "containerPort", "protocol", "hostIP"],
  bandwidth: ["ingressRate", "ingressBurst", "egressRate", "egressBurst"],
  dns: ["servers", "searches", "options"],
  ipRanges: ["subnet", "rangeStart", "rangeEnd", "gateway"],
};

function renameFields(value: unknown, fields: readonly string[]): unknown {
  if (Array.isArray(value)) return value.map((v) => renameFields(v, fields));
  if (typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const canonical = fields.find((f) => f.toLowerCase() === k.toLowerCase()) ?? k;
    out[canonical] = renameFields(v, fields);
  }
  return out;
}

/**
 * The `runtimeConfig` of one plugin: each capability the plugin sets to `true` and the
 * runtime sent (key matched case-insensitively, an exact match preferred), under the
 * capability's own spelling. Undefined when empty (the key is then omitted).
 */
export function runtimeConfigFor(
  capabilities: Record<string, boolean> | undefined,
  capabilityArgs: Record<string, unknown> | undefined,
): Record<string, unknown> | undefined {
  if (!capabilities || !capabilityArgs) return undefined;
  const rc: Record<string, unknown> = {};
  const argKeys = Object.keys(capabilityArgs);
  for (const [cap, enabled] of Object.entries(capabilities)) {
    if (enabled !== true) continue;
    const key = Object.hasOwn(capabilityArgs, cap)
      ? cap
      : argKeys.find((k) => k.toLowerCase() === cap.toLowerCase());
    if (key === undefined || capabilityArgs[key] === undefined) continue;
    const fields = CAPABILITY_FIELDS[cap];
    rc[cap] = fields ? renameFields(capabilityArgs[key], fields) : capabilityArgs[key];
  }
  return Object.keys(rc).length ? rc : undefined;
}

function describe(list: ConfList, p: PluginEntry, verb: string): string {
  return `Plugin "${p.type}" of network "${list.name}" failed (${verb})`;
}

interface Step {
  list: ConfList;
  plugin: PluginEntry;
  command: Exclude<Verb, "VERSION">;
  conf: Uint8Array;
  env: PluginEnv;
  opts: ChainOptions;
}

async function invoke(step: Step): Promise<Record<string, unknown> | undefined> {
  const { list, plugin, command, opts } = step;
  const req: PluginRequest = { command, conf: step.conf, env: step.env };
  if (opts.timeoutMs !== undefined) req.timeoutMs = opts.timeoutMs;
  if (opts.linkGroup !== undefined) req.linkGroup = opts.linkGroup;
  try {
    const impl = await opts.registry.get(plugin.type, step.env.path);
    return await impl.invoke(req);
  } catch (e) {
    // The meta-plugin's errors already name the network and interface that failed.
    if (plugin.type === "podplex" && e instanceof CniError) throw e;
    throw CniError.wrap(e, Code.Internal, describe(list, plugin, command));
  }
}

/** The plugin's conf for ADD/DEL/CHECK: name, version, prevResult and runtimeConfig injected. */
function buildConf(
  list: ConfList,
  plugin: PluginEntry,
  prev: Record<string, unknown> | undefined,
  opts: ChainOptions,
): Uint8Array {
  return injectConf(plugin.bytes, {
    name: list.name,
    cniVersion: list.cniVersion,
    prevResult: prev,
    runtimeConfig: runtimeConfigFor(plugin.conf.capabilities, opts.capabilityArgs),
  });
}

async function add(list: ConfList, opts: ChainOptions): Promise<ChainOutcome> {
  let prev = opts.prevResult ? convertResult(opts.prevResult, list.cniVersion) : undefined;
  for (const plugin of list.plugins) {
    const conf = buildConf(list, plugin, prev, opts);
    const out = await invoke({ list, plugin, command: "ADD", conf, env: opts.env, opts });
    if (!out) {
      throw new CniError(Code.DelegateFailed, `${describe(list, plugin, "ADD")}: no result`);
    }
    try {
      prev = convertResult(toCanonical(out, list.cniVersion), list.cniVersion);
    } catch (e) {
      throw CniError.wrap(e, Code.DecodeFailure, describe(list, plugin, "ADD"));
    }
  }
  const result = toCanonical(prev, list.cniVersion);
  return { result, json: prev };
}

async function del(list: ConfList, opts: ChainOptions): Promise<ChainOutcome> {
  const cached = opts.cachedResult && atLeast(list.cniVersion, "0.4.0")
    ? convertResult(opts.cachedResult, list.cniVersion)
    : undefined;
  for (const plugin of [...list.plugins].reverse()) {
    const conf = buildConf(list, plugin, cached, opts);
    await invoke({ list, plugin, command: "DEL", conf, env: opts.env, opts });
  }
  return {};
}

async function check(list: ConfList, opts: ChainOptions): Promise<ChainOutcome> {
  if (!atLeast(list.cniVersion, "0.4.0")) {
    throw new CniError(
      Code.IncompatibleVersion,
      `Config version "${list.cniVersion}" of network "${list.name}" does not allow CHECK`,
    );
  }
  if (list.disableCheck) return {};
  if (!opts.cachedResult) {
    throw new CniError(
      Code.UnknownContainer,
      `No result of an ADD of network "${list.name}" to CHECK against`,
    );
  }
  const cached = convertResult(opts.cachedResult, list.cniVersion);
  for (const plugin of list.plugins) {
    const conf = buildConf(list, plugin, cached, opts);
    await invoke({ list, plugin, command: "CHECK", conf, env: opts.env, opts });
  }
  return {};
}

async function gc(list: ConfList, opts: ChainOptions): Promise<ChainOutcome> {
  if (list.disableGC || !atLeast(list.cniVersion, "1.1.0")) return {};
  const valid = opts.validAttachments?.map((a) => ({
    containerID: a.containerID,
    ifname: a.ifname,
  }));
  const errors: CniError[] = [];
  for (const plugin of list.plugins) {
    try {
      const conf = injectConf(plugin.bytes, {
        name: list.name,
        cniVersion: list.cniVersion,
        "cni.dev/valid-attachments": valid,
        "cni.dev/attachments": valid,
      });
      await invoke({ list, plugin, command: "GC", conf, env: { path: opts.env.path }, opts });
    } catch (e) {
      errors.push(CniError.wrap(e));
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) {
    throw new CniError(
      errors[0].code,
      `GC of network "${list.name}" failed in ${errors.length} plugins`,
      errors.map((e) => e.message + (e.details ? ` (${e.details})` : "")).join("; "),
    );
  }
  return {};
}

async function status(list: ConfList, opts: ChainOptions): Promise<ChainOutcome> {
  if (!atLeast(list.cniVersion, "1.1.0")) return {};
  for (const plugin of list.plugins) {
    const conf = injectConf(plugin.bytes, { name: list.name, cniVersion: list.cniVersion });
    await invoke({ list, plugin, command: "STATUS", conf, env: { path: opts.env.path }, opts });
  }
  return {};
}

/**
 * Runs one verb over a conflist, as libcni does (see the module doc for each verb).
 *
 * @returns for ADD the final result, canonical and in the list's version; else `{}`
 * @throws {CniError} the failing plugin's error (its code kept), prefixed with the plugin
 *   and network; for GC every plugin's error joined
 *
 * @example
 * ```ts
 * const { result } = await runChain(list, "ADD", { env, registry, capabilityArgs });
 * await runChain(list, "DEL", { env, registry, cachedResult: result });
 * ```
 */
export async function runChain(
  list: ConfList,
  verb: Exclude<Verb, "VERSION">,
  opts: ChainOptions,
): Promise<ChainOutcome> {
  switch (verb) {
    case "ADD":
      return await add(list, opts);
    case "DEL":
      return await del(list, opts);
    case "CHECK":
      return await check(list, opts);
    case "GC":
      return await gc(list, opts);
    case "STATUS":
      return await status(list, opts);
  }
}
