/**
 * The adapter from a {@linkcode BuiltinDelegate} (parsed conf in, canonical result out) to
 * a {@linkcode Plugin} (conf bytes in, result JSON in the conf's version out), so built-in
 * delegates and external binaries are interchangeable in chains.
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import { parseCniArgs } from "../../conf/cni_args.ts";
import { parseNetConf } from "../../conf/netconf.ts";
import { convertResult, toCanonical } from "../../conf/result.ts";
import type { CniResult } from "../../conf/types.ts";
import type {
  BuiltinDelegate,
  DelegateContext,
  Plugin,
  PluginRegistry,
  PluginRequest,
} from "../types.ts";

type IpamCommand = Parameters<DelegateContext["ipam"]>[0];

/**
 * Runs the IPAM plugin named by the conf's `ipam.type` with the same conf bytes and env, as
 * the reference plugins do, and reads its ADD result into the canonical shape.
 */
function ipamRunner(
  req: PluginRequest,
  ipamType: string | undefined,
  version: string,
  registry: () => PluginRegistry,
): DelegateContext["ipam"] {
  return async (command: IpamCommand): Promise<CniResult | undefined> => {
    if (!ipamType) {
      throw new CniError(
        Code.InvalidConfig,
        `Missing "ipam.type": this plugin needs an IPAM plugin`,
      );
    }
    const plugin = await registry().get(ipamType, req.env.path);
    const out = await plugin.invoke({ ...req, command });
    if (command !== "ADD") return undefined;
    if (!out) {
      throw new CniError(Code.DelegateFailed, `IPAM plugin "${ipamType}" returned no result`);
    }
    return toCanonical(out, version);
  };
}

/** Builds the context a delegate gets from a request and its parsed conf. */
export function delegateContext(
  req: PluginRequest,
  raw: Record<string, unknown>,
  version: string,
  registry: () => PluginRegistry,
): DelegateContext {
  const ipam = raw.ipam as { type?: string } | undefined;
  const ctx: DelegateContext = {
    env: req.env,
    cniArgs: parseCniArgs(req.env.args),
    confBytes: req.conf,
    raw,
    ipam: ipamRunner(req, ipam?.type || undefined, version, registry),
  };
  if (raw.prevResult !== undefined) {
    ctx.prevResult = toCanonical(raw.prevResult, version, Code.InvalidConfig);
  }
  if (req.linkGroup !== undefined) ctx.linkGroup = req.linkGroup;
  return ctx;
}

/**
 * Adapts a built-in delegate to the {@linkcode Plugin} contract: parses the conf bytes,
 * calls `d.parseConf`, builds the {@linkcode DelegateContext} (CNI_ARGS parsed, prevResult in
 * canonical form, an `ipam()` runner through `registry`), calls the verb, and converts ADD's
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
  return {
    type: d.type,
    builtin: true,
    async invoke(req: PluginRequest) {
      const parsed = parseNetConf(req.conf, { requireName: false });
      const raw = parsed.conf as Record<string, unknown>;
      const conf = d.parseConf(raw);
      const ctx = delegateContext(req, raw, parsed.cniVersion, registry);
      switch (req.command) {
        case "ADD":
          return convertResult(await d.add(conf, ctx), parsed.cniVersion);
        case "DEL":
          await d.del(conf, ctx);
          return undefined;
        case "CHECK":
          await d.check(conf, ctx);
          return undefined;
        case "STATUS":
          await d.status?.(conf, ctx);
          return undefined;
        case "GC":
          await d.gc?.(conf, ctx);
          return undefined;
      }
    },
  };
}
