/**
 * The chain runner: runs the plugins of a conflist as libcni does (libcni/api.go
 * AddNetworkList, DelNetworkList, CheckNetworkList, GCNetworkList, GetStatusNetworkList).
 *
 * Each plugin gets its conf with the list's `name` and `cniVersion` injected, `runtimeConfig`
 * (its true `capabilities` ∩ the runtime's capability args) and `prevResult`:
 * - ADD: in order, each plugin gets the previous plugin's result; stops at the first error
 *   (rolling back is the caller's decision);
 * - DEL: in reverse, each plugin gets the cached final ADD result (version >= 0.4.0);
 *   stops at the first error, as libcni does, unless asked to keep going;
 * - CHECK: in order with the cached result; refused below 0.4.0; skipped with `disableCheck`;
 * - GC (>= 1.1.0, unless `disableGC`): every plugin, with `cni.dev/valid-attachments` (and
 *   the older `cni.dev/attachments`); keeps going and reports every error;
 * - STATUS (>= 1.1.0): every plugin; the first error is returned.
 *
 * @module
 */
import { CniError, Code, joinErrors } from "../../conf/errors.ts";
import { keyOf } from "../../conf/json.ts";
import { type ConfList, injectConf, type PluginEntry } from "../../conf/netconf.ts";
import { convertResult, toCanonical } from "../../conf/result.ts";
import type { Attachment, CniResult, Verb } from "../../conf/types.ts";
import { atLeast } from "../../conf/version.ts";
import type {
  InProcessRequest,
  Plugin,
  PluginEnv,
  PluginRegistry,
  PluginRequest,
} from "../types.ts";

/** Options of {@linkcode runChain}. */
export interface ChainOptions {
  /** The CNI_* environment (GC and STATUS only use `path`). */
  env: PluginEnv;
  /** Serves each plugin's `type`. */
  registry: PluginRegistry;
  /** The runtime's capability args (keys matched case-insensitively). */
  capabilityArgs?: Record<string, unknown>;
  /** ADD: a result the first plugin gets as prevResult (rarely used). */
  prevResult?: CniResult;
  /** DEL/CHECK: the final result of the ADD, given to every plugin as prevResult. */
  cachedResult?: CniResult;
  /** GC: the attachments that are still in use. */
  validAttachments?: Attachment[];
  /**
   * DEL: go on past a plugin's failure and DEL the plugins before it too, then report every
   * failure (a DEL must release all it can; libcni stops at the first error).
   */
  keepGoing?: boolean;
  /**
   * GC: below version 1.1.0 (which has no GC, so libcni sends none) still GC the plugins
   * that run in-process with an in-process IPAM: they release by the valid list whatever
   * the conf's version. The meta-plugin asks this for the networks its pods had, so that a
   * lease leaked on a 1.0.0 network is recovered.
   */
  gcInProcessAnyVersion?: boolean;
  /** Give up on an external plugin after this long (ms). */
  timeoutMs?: number;
  /** The pod's link group for container-side links (podplex-internal). */
  linkGroup?: number;
}

/** What a chain produced. */
export interface ChainOutcome {
  /** ADD: the final result in canonical form (convert it once, when it is printed). */
  result?: CniResult;
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
  for (const [cap, enabled] of Object.entries(capabilities)) {
    if (enabled !== true) continue;
    const key = keyOf(capabilityArgs, cap);
    if (key === undefined || capabilityArgs[key] === undefined) continue;
    const fields = CAPABILITY_FIELDS[cap];
    rc[cap] = fields ? renameFields(capabilityArgs[key], fields) : capabilityArgs[key];
  }
  return Object.keys(rc).length ? rc : undefined;
}

function describe(list: ConfList, p: PluginEntry, verb: string): string {
  return `Plugin "${p.type}" of network "${list.name}" failed (${verb})`;
}

/** What one plugin of the list is given besides the verb. */
interface Step {
  list: ConfList;
  plugin: PluginEntry;
  command: Exclude<Verb, "VERSION">;
  /** Keys a runtime injects into the plugin's conf (undefined values are not set). */
  inject: Record<string, unknown>;
  /** ADD: the previous plugin's result; DEL, CHECK: the cached ADD result. */
  prev?: CniResult;
  env: PluginEnv;
  opts: ChainOptions;
}

/**
 * Runs one plugin: in-process plugins get the parsed conf and canonical prevResult and give
 * a canonical result; external ones get bytes and their result is read once into canonical
 * form.
 */
async function invoke(step: Step, started?: () => void): Promise<CniResult | undefined> {
  const { list, plugin, command, opts } = step;
  let impl: Plugin | undefined;
  try {
    impl = await opts.registry.get(plugin.type, step.env.path);
    started?.();
    const result = impl.call ? await impl.call(inProcessStep(step)) : await execStep(impl, step);
    if (command === "ADD" && !result) {
      throw new CniError(Code.DelegateFailed, `${describe(list, plugin, "ADD")}: no result`);
    }
    return result;
  } catch (e) {
    if (impl?.traits.namesItsErrors && e instanceof CniError) throw e;
    throw CniError.wrap(e, Code.Internal, describe(list, plugin, command));
  }
}

function conf(step: Step): Record<string, unknown> {
  const out: Record<string, unknown> = { ...step.plugin.conf };
  for (const [k, v] of Object.entries(step.inject)) if (v !== undefined) out[k] = v;
  return out;
}

/** The versioned prevResult an external plugin (or an exec'd IPAM) reads from its stdin. */
function stdinBytes(step: Step): Uint8Array {
  const prevResult = step.prev ? convertResult(step.prev, step.list.cniVersion) : undefined;
  return injectConf(step.plugin.bytes, { ...step.inject, prevResult });
}

function inProcessStep(step: Step): InProcessRequest {
  const req: InProcessRequest = {
    command: step.command,
    conf: conf(step),
    cniVersion: step.list.cniVersion,
    env: step.env,
    bytes: () => stdinBytes(step),
  };
  if (step.prev) req.prevResult = step.prev;
  if (step.opts.timeoutMs !== undefined) req.timeoutMs = step.opts.timeoutMs;
  if (step.opts.linkGroup !== undefined) req.linkGroup = step.opts.linkGroup;
  return req;
}

async function execStep(impl: Plugin, step: Step): Promise<CniResult | undefined> {
  const req: PluginRequest = { command: step.command, conf: stdinBytes(step), env: step.env };
  if (step.opts.timeoutMs !== undefined) req.timeoutMs = step.opts.timeoutMs;
  if (step.opts.linkGroup !== undefined) req.linkGroup = step.opts.linkGroup;
  const out = await impl.invoke(req);
  if (!out) return undefined;
  try {
    return toCanonical(out, step.list.cniVersion);
  } catch (e) {
    throw CniError.wrap(e, Code.DecodeFailure, `Unreadable result`);
  }
}

/** The keys injected into each plugin's conf for ADD/DEL/CHECK. */
function injected(list: ConfList, plugin: PluginEntry, opts: ChainOptions) {
  return {
    name: list.name,
    cniVersion: list.cniVersion,
    runtimeConfig: runtimeConfigFor(plugin.conf.capabilities, opts.capabilityArgs),
  };
}

async function add(list: ConfList, opts: ChainOptions): Promise<ChainOutcome> {
  let prev = opts.prevResult;
  let ran = 0;
  for (const plugin of list.plugins) {
    const inject = injected(list, plugin, opts);
    const step: Step = { list, plugin, command: "ADD", inject, prev, env: opts.env, opts };
    try {
      prev = await invoke(step, () => ran++);
    } catch (e) {
      throw new ChainAddError(e as CniError, ran);
    }
  }
  return { result: prev };
}

/**
 * A chain's ADD that failed, with how many of its plugins were started (the failing one
 * included unless it could not even be found): undoing it DELs exactly those, in reverse.
 * A DEL of the whole chain would stop at a plugin that never ran (a missing binary) and
 * never reach the IPAM of the plugins before it.
 */
export class ChainAddError extends CniError {
  /** How many plugins of the chain were started, from the first. */
  readonly ran: number;

  /**
   * Wraps the failing plugin's error, keeping its code, message and details.
   *
   * @param err the error the chain's ADD failed with
   * @param ran how many plugins were started
   */
  constructor(err: CniError, ran: number) {
    super(err.code, err.message, err.details, { cause: err });
    this.name = "ChainAddError";
    this.ran = ran;
  }
}

async function del(list: ConfList, opts: ChainOptions): Promise<ChainOutcome> {
  const prev = opts.cachedResult && atLeast(list.cniVersion, "0.4.0")
    ? opts.cachedResult
    : undefined;
  const errors: CniError[] = [];
  for (const plugin of [...list.plugins].reverse()) {
    const inject = injected(list, plugin, opts);
    try {
      await invoke({ list, plugin, command: "DEL", inject, prev, env: opts.env, opts });
    } catch (e) {
      if (!opts.keepGoing) throw e;
      errors.push(CniError.wrap(e));
    }
  }
  if (errors.length) throw joinErrors(errors, `DEL of network "${list.name}" failed`);
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
  const prev = opts.cachedResult;
  for (const plugin of list.plugins) {
    const inject = injected(list, plugin, opts);
    await invoke({ list, plugin, command: "CHECK", inject, prev, env: opts.env, opts });
  }
  return {};
}

/** Whether a plugin and its IPAM both run in-process. */
function inProcessWithIpam(plugin: PluginEntry, registry: PluginRegistry): boolean {
  const ipam = (plugin.conf.ipam as { type?: unknown } | undefined)?.type;
  return registry.inProcess(plugin.type) &&
    (typeof ipam !== "string" || ipam === "" || registry.inProcess(ipam));
}

async function gc(list: ConfList, opts: ChainOptions): Promise<ChainOutcome> {
  if (list.disableGC) return {};
  const old = !atLeast(list.cniVersion, "1.1.0");
  if (old && !opts.gcInProcessAnyVersion) return {};
  const plugins = old
    ? list.plugins.filter((p) => inProcessWithIpam(p, opts.registry))
    : list.plugins;
  const valid = opts.validAttachments?.map((a) => ({
    containerID: a.containerID,
    ifname: a.ifname,
  }));
  const inject = {
    name: list.name,
    cniVersion: list.cniVersion,
    "cni.dev/valid-attachments": valid,
    "cni.dev/attachments": valid,
  };
  const errors: CniError[] = [];
  for (const plugin of plugins) {
    try {
      await invoke({ list, plugin, command: "GC", inject, env: { path: opts.env.path }, opts });
    } catch (e) {
      errors.push(CniError.wrap(e));
    }
  }
  if (errors.length) throw joinErrors(errors, `GC of network "${list.name}" failed`);
  return {};
}

async function status(list: ConfList, opts: ChainOptions): Promise<ChainOutcome> {
  if (!atLeast(list.cniVersion, "1.1.0")) return {};
  const inject = { name: list.name, cniVersion: list.cniVersion };
  for (const plugin of list.plugins) {
    await invoke({ list, plugin, command: "STATUS", inject, env: { path: opts.env.path }, opts });
  }
  return {};
}

/**
 * Runs one verb over a conflist, as libcni does (see the module doc for each verb).
 *
 * @returns for ADD the final result in canonical form; else `{}`
 * @throws {CniError} the failing plugin's error (its code kept), prefixed with the plugin
 *   and network; for GC every plugin's error joined
 *
 * @example
 * ```ts
 * const { result } = await runChain(list, "ADD", { env, registry, capabilityArgs });
 * print(convertResult(result!, list.cniVersion));
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
