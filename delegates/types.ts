/**
 * The contracts between the meta-plugin, the chain runner and delegates.
 *
 * Every delegate, built in or an external binary, is a {@linkcode Plugin}: it takes the
 * exact bytes a runtime would write to a plugin's stdin plus the CNI_* environment, and
 * answers with a result object (in the conf's `cniVersion`) or throws a `CniError`. That is
 * libcni's contract, so a built-in and an exec'd binary are interchangeable.
 *
 * Built-in delegates are written against {@linkcode BuiltinDelegate} (parsed conf in,
 * canonical result out) and adapted to `Plugin` by `delegates/runner/builtin.ts`.
 *
 * @module
 */
import type { CniResult, Verb } from "../conf/types.ts";

/** The CNI_* environment of one invocation, already validated. */
export interface PluginEnv {
  /** CNI_CONTAINERID (absent for GC and STATUS). */
  containerId?: string;
  /** CNI_NETNS: path of the container netns (may be empty or gone on DEL). */
  netns?: string;
  /** CNI_IFNAME. */
  ifname?: string;
  /** CNI_ARGS exactly as received, `K=V;K=V`. */
  args?: string;
  /** CNI_PATH split on `:`. */
  path: string[];
}

/** One call of a plugin. */
export interface PluginRequest {
  command: Exclude<Verb, "VERSION">;
  /** The plugin's config as the bytes of its stdin (passed on byte for byte). */
  conf: Uint8Array;
  env: PluginEnv;
  /** Give up on an external plugin after this long (ms). */
  timeoutMs?: number;
  /**
   * podplex-internal hint: a link group (IFLA_GROUP) that container-side links made for this
   * pod are put in, so the whole pod can be torn down with one RTM_DELLINK.
   */
  linkGroup?: number;
}

/** A delegate as the chain runner sees it. */
export interface Plugin {
  /** The `type` it serves. */
  readonly type: string;
  /** Whether it runs in-process (false: an external binary). */
  readonly builtin: boolean;
  /**
   * Runs one verb.
   *
   * @returns the parsed result JSON for ADD (in the conf's version), else undefined
   * @throws {CniError} the plugin's error
   */
  invoke(req: PluginRequest): Promise<Record<string, unknown> | undefined>;
}

/** Finds the plugin for a `type`: a built-in, else an external binary in CNI_PATH. */
export interface PluginRegistry {
  /**
   * @throws {CniError} when no built-in serves `type` and no binary of that name is in `path`
   */
  get(type: string, path: string[]): Promise<Plugin>;
  /**
   * Whether `type` runs in-process (a built-in the caller did not ask to exec). The
   * meta-plugin group-deletes links only of chains made entirely of such plugins; a registry
   * without this method is taken to exec everything.
   */
  inProcess?(type: string): boolean;
}

/** Everything a built-in delegate is given besides its parsed conf. */
export interface DelegateContext {
  env: PluginEnv;
  /** CNI_ARGS parsed to key/value pairs, in order. */
  cniArgs: Map<string, string>;
  /** The raw config bytes (to pass on to an IPAM plugin unchanged, as the reference plugins do). */
  confBytes: Uint8Array;
  /** The config object parsed from `confBytes`. */
  raw: Record<string, unknown>;
  /** The previous plugin's result (canonical), when chained. */
  prevResult?: CniResult;
  /** Runs the IPAM plugin named by `ipam.type` (built in or external) with the same conf. */
  ipam(command: "ADD" | "DEL" | "CHECK" | "GC" | "STATUS"): Promise<CniResult | undefined>;
  /** See {@linkcode PluginRequest.linkGroup}. */
  linkGroup?: number;
}

/**
 * A built-in delegate: the shape of every file under `delegates/`.
 * `add` returns the canonical result; the adapter converts it to the conf's version.
 */
export interface BuiltinDelegate<C> {
  readonly type: string;
  /**
   * Validates and defaults a config object.
   *
   * @throws {CniError} code 7 naming the field and value
   */
  parseConf(raw: Record<string, unknown>): C;
  add(conf: C, ctx: DelegateContext): Promise<CniResult>;
  /** Idempotent and best-effort: a missing netns or link is success. */
  del(conf: C, ctx: DelegateContext): Promise<void>;
  /** Fails when something ADD made is missing or different from `ctx.prevResult`. */
  check(conf: C, ctx: DelegateContext): Promise<void>;
  /** STATUS: resolves when ready for ADD. */
  status?(conf: C, ctx: DelegateContext): Promise<void>;
  /** GC: releases what is not in `cni.dev/valid-attachments`. */
  gc?(conf: C, ctx: DelegateContext): Promise<void>;
}
