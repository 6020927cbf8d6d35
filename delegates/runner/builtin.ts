/**
 * The adapter from a {@linkcode BuiltinDelegate} (parsed conf in, canonical result out) to a
 * {@linkcode Plugin}: `call` for chains of in-process plugins (no bytes, no version
 * conversion), `invoke` for the bytes contract of libcni (the conf parsed here, the result
 * converted to the conf's version), so built-ins and external binaries are interchangeable.
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import { parseCniArgs } from "../../conf/cni_args.ts";
import { type ParsedNetConf, parseNetConf } from "../../conf/netconf.ts";
import { convertResult, toCanonical } from "../../conf/result.ts";
import type { CniResult } from "../../conf/types.ts";
import type {
  BuiltinDelegate,
  DelegateContext,
  DelegateTraits,
  InProcessRequest,
  Plugin,
  PluginRegistry,
  PluginRequest,
} from "../types.ts";

type IpamCommand = Parameters<DelegateContext["ipam"]>[0];

const encoder = new TextEncoder();

/** The IPAM type a conf names (`ipam.type`), if any. */
function ipamTypeOf(raw: Record<string, unknown>): string | undefined {
  const ipam = raw.ipam as { type?: unknown } | undefined;
  return typeof ipam?.type === "string" && ipam.type !== "" ? ipam.type : undefined;
}

/**
 * Runs the IPAM plugin named by the conf's `ipam.type` with the same conf and env, as the
 * reference plugins do: in-process with the parsed conf, else exec'd with its bytes.
 */
function ipamRunner(
  req: InProcessRequest,
  registry: () => PluginRegistry,
): DelegateContext["ipam"] {
  return async (command: IpamCommand): Promise<CniResult | undefined> => {
    const ipamType = ipamTypeOf(req.conf);
    if (!ipamType) {
      throw new CniError(
        Code.InvalidConfig,
        `Missing "ipam.type": this plugin needs an IPAM plugin`,
      );
    }
    const plugin = await registry().get(ipamType, req.env.path);
    const sub: InProcessRequest = { ...req, command };
    if (plugin.call) {
      const result = await plugin.call(sub);
      if (command === "ADD" && !result) {
        throw new CniError(Code.DelegateFailed, `IPAM plugin "${ipamType}" returned no result`);
      }
      return result;
    }
    const out = await plugin.invoke(bytesRequest(sub));
    if (command !== "ADD") return undefined;
    if (!out) {
      throw new CniError(Code.DelegateFailed, `IPAM plugin "${ipamType}" returned no result`);
    }
    return toCanonical(out, req.cniVersion);
  };
}

/**
 * Runs the plugin of `conf.type` with a conf the delegate made (see
 * {@linkcode DelegateContext.delegate}): in-process with the object, else exec'd with its
 * bytes (prevResult put in them in the conf's version).
 */
function delegateRunner(
  req: InProcessRequest,
  registry: () => PluginRegistry,
): NonNullable<DelegateContext["delegate"]> {
  return async (command, conf) => {
    const type = conf.type;
    if (typeof type !== "string" || type === "") {
      throw new CniError(Code.InvalidConfig, `Invalid "type": the delegate conf names no plugin`);
    }
    const version = typeof conf.cniVersion === "string" ? conf.cniVersion : "0.1.0";
    const prev = req.prevResult;
    const sub: InProcessRequest = {
      command,
      conf,
      cniVersion: version,
      env: req.env,
      bytes: lazyBytes(prev ? { ...conf, prevResult: convertResult(prev, version) } : conf),
    };
    if (prev !== undefined) sub.prevResult = prev;
    if (req.timeoutMs !== undefined) sub.timeoutMs = req.timeoutMs;
    if (req.linkGroup !== undefined) sub.linkGroup = req.linkGroup;
    const plugin = await registry().get(type, req.env.path);
    if (plugin.call) {
      const result = await plugin.call(sub);
      if (command === "ADD" && !result) {
        throw new CniError(Code.DelegateFailed, `Plugin "${type}" returned no result`);
      }
      return result;
    }
    const out = await plugin.invoke(bytesRequest(sub));
    if (command !== "ADD") return undefined;
    if (!out) throw new CniError(Code.DelegateFailed, `Plugin "${type}" returned no result`);
    return toCanonical(out, version);
  };
}

/** The bytes form of an in-process request (for an exec'd plugin). */
export function bytesRequest(req: InProcessRequest): PluginRequest {
  const out: PluginRequest = { command: req.command, conf: req.bytes(), env: req.env };
  if (req.timeoutMs !== undefined) out.timeoutMs = req.timeoutMs;
  if (req.linkGroup !== undefined) out.linkGroup = req.linkGroup;
  return out;
}

/** Builds the context a delegate gets from an in-process request. */
export function delegateContext(
  req: InProcessRequest,
  registry: () => PluginRegistry,
): DelegateContext {
  const ctx: DelegateContext = {
    env: req.env,
    cniArgs: parseCniArgs(req.env.args),
    raw: req.conf,
    ipam: ipamRunner(req, registry),
    delegate: delegateRunner(req, registry),
    async ipamTraits(): Promise<DelegateTraits> {
      const type = ipamTypeOf(req.conf);
      return type ? (await registry().get(type, req.env.path)).traits : {};
    },
  };
  if (req.prevResult !== undefined) ctx.prevResult = req.prevResult;
  if (req.linkGroup !== undefined) ctx.linkGroup = req.linkGroup;
  return ctx;
}

/**
 * The in-process form of a bytes request: the conf parsed once (name not required: chained
 * entries get it injected) unless the caller already did, prevResult read into canonical
 * form.
 *
 * @throws {CniError} 6, 7 or 1 from parsing
 */
export function inProcessRequest(
  req: PluginRequest,
  parsed: ParsedNetConf = parseNetConf(req.conf, { requireName: false }),
): InProcessRequest {
  const conf = parsed.conf as Record<string, unknown>;
  const out: InProcessRequest = {
    command: req.command,
    conf,
    cniVersion: parsed.cniVersion,
    env: req.env,
    bytes: () => req.conf,
  };
  if (conf.prevResult !== undefined) {
    out.prevResult = toCanonical(conf.prevResult, parsed.cniVersion, Code.InvalidConfig);
  }
  if (req.timeoutMs !== undefined) out.timeoutMs = req.timeoutMs;
  if (req.linkGroup !== undefined) out.linkGroup = req.linkGroup;
  return out;
}

/** An in-process request's `bytes()` for a conf object: serialised when first asked. */
export function lazyBytes(conf: Record<string, unknown>): () => Uint8Array {
  let bytes: Uint8Array | undefined;
  return () => bytes ??= encoder.encode(JSON.stringify(conf));
}

/**
 * Adapts a built-in delegate to the {@linkcode Plugin} contract: `call` runs `d.parseConf`
 * on the conf object and the verb with a {@linkcode DelegateContext} (CNI_ARGS parsed, an
 * `ipam()` runner through `registry`); `invoke` parses the bytes first and converts ADD's
 * canonical result to the conf's `cniVersion`. STATUS and GC without a handler succeed.
 *
 * @param d the delegate
 * @param registry gives the registry that serves the IPAM plugin (a function, so a registry
 *   can hand itself to the delegates it creates)
 * @throws {CniError} from parsing (6, 7, 1) or from the delegate
 *
 * @example
 * ```ts
 * const plugin = builtinPlugin(bridgeDelegate, () => registry);
 * const result = await plugin.invoke({ command: "ADD", conf, env });
 * ```
 */
// deno-lint-ignore no-explicit-any
export function builtinPlugin<C = any>(
  d: BuiltinDelegate<C>,
  registry: () => PluginRegistry,
): Plugin {
  const traits: DelegateTraits = Object.freeze({ ...d.traits });
  async function call(req: InProcessRequest): Promise<CniResult | undefined> {
    const conf = d.parseConf(req.conf, req.env);
    const ctx = delegateContext(req, registry);
    switch (req.command) {
      case "ADD":
        return await d.add(conf, ctx);
      case "DEL":
        return void await d.del(conf, ctx);
      case "CHECK":
        return void await d.check(conf, ctx);
      case "STATUS":
        return void await d.status?.(conf, ctx);
      case "GC":
        return void await d.gc?.(conf, ctx);
    }
  }
  return {
    type: d.type,
    builtin: true,
    traits,
    call,
    async invoke(req: PluginRequest) {
      const inner = inProcessRequest(req);
      const result = await call(inner);
      return result && req.command === "ADD" ? convertResult(result, inner.cniVersion) : undefined;
    },
  };
}
