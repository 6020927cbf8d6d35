/**
 * The contracts between the meta-plugin, the chain runner and delegates.
 *
 * Every delegate, built in or an external binary, is a {@linkcode Plugin}: it takes the
 * exact bytes a runtime would write to a plugin's stdin plus the CNI_* environment, and
 * answers with a result object (in the conf's `cniVersion`) or throws a `CniError`. That is
 * libcni's contract, so a built-in and an exec'd binary are interchangeable.
 *
 * In-process plugins also offer {@linkcode Plugin.call}: the conf already parsed in, the
 * canonical result out, so a chain of built-ins parses each conf once and converts the result
 * to a version once, when it is printed. Built-in delegates are written against
 * {@linkcode BuiltinDelegate} and adapted to both by `delegates/runner/builtin.ts`.
 *
 * What callers must know about a delegate is data on it ({@linkcode DelegateTraits}): no
 * module tests a type name.
 *
 * @module
 */
import type { Trace } from "../conf/trace.ts";
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
  /**
   * The caller's working directory when it is not this process's (`podplex serve`): relative
   * paths of the call are resolved against it (`conf/paths.ts`), external plugins run in it.
   */
  cwd?: string;
  /**
   * PODPLEX_SOCKET, when the caller set it: the `podplex serve` socket it was pointed at. The
   * daemon's other sockets (the DHCP lease keeper's) sit beside it.
   */
  daemonSocket?: string;
}

/** One call of a plugin. */
export interface PluginRequest {
  /** The verb. */
  command: Exclude<Verb, "VERSION">;
  /** The plugin's config as the bytes of its stdin (passed on byte for byte). */
  conf: Uint8Array;
  /** The CNI_* environment of the call. */
  env: PluginEnv;
  /** Give up on an external plugin after this long (ms). */
  timeoutMs?: number;
  /**
   * podplex-internal hint: a link group (IFLA_GROUP) that container-side links made for this
   * pod are put in, so the whole pod can be torn down with one RTM_DELLINK.
   */
  linkGroup?: number;
}

/**
 * One call of an in-process plugin: the same call as a {@linkcode PluginRequest}, with the
 * conf already parsed and prevResult in canonical form.
 */
export interface InProcessRequest {
  /** The verb. */
  command: Exclude<Verb, "VERSION">;
  /**
   * The plugin's conf object with `name`, `cniVersion` and `runtimeConfig` set as a runtime
   * would inject them (prevResult is {@linkcode InProcessRequest.prevResult}).
   */
  conf: Record<string, unknown>;
  /** The effective version of the conf (what a result printed for it must be in). */
  cniVersion: string;
  /** ADD: the previous plugin's result; DEL and CHECK: the cached final ADD result. */
  prevResult?: CniResult;
  /** The CNI_* environment of the call. */
  env: PluginEnv;
  /** The same conf as the bytes an external plugin would read (built when first asked). */
  bytes(): Uint8Array;
  /** Give up on an external plugin after this long (ms). */
  timeoutMs?: number;
  /** See {@linkcode PluginRequest.linkGroup}. */
  linkGroup?: number;
  /** The call's timing marks (the top-level call only). */
  trace?: Trace;
  /**
   * Aborts when the call's client no longer waits for it (the top-level call only; the
   * daemon's deadline): an ADD stops at its next attachment and rolls back.
   */
  signal?: AbortSignal;
}

/** What callers must know about a delegate, declared by the delegate itself. */
export interface DelegateTraits {
  /**
   * Its DEL needs the container's link to still exist (a DHCP release goes out over it): the
   * meta-plugin then DELs the attachment before the pod's link group goes, and a main plugin
   * releases such an IPAM before deleting its link.
   */
  readonly delNeedsLink?: boolean;
  /**
   * Its errors already name the network and interface they are about (the meta-plugin), so
   * the chain runner passes them on without prefixing the plugin's name.
   */
  readonly namesItsErrors?: boolean;
}

/** A delegate as the chain runner sees it. */
export interface Plugin {
  /** The `type` it serves. */
  readonly type: string;
  /** Whether it runs in-process (false: an external binary). */
  readonly builtin: boolean;
  /** What callers must know about it (empty for an external binary). */
  readonly traits: DelegateTraits;
  /**
   * Runs one verb from the conf's bytes (libcni's contract: what a binary gets).
   *
   * @returns the parsed result JSON for ADD (in the conf's version), else undefined
   * @throws {CniError} the plugin's error
   */
  invoke(req: PluginRequest): Promise<Record<string, unknown> | undefined>;
  /**
   * In-process plugins only: runs one verb from the parsed conf.
   *
   * @returns the canonical result for ADD, else undefined
   * @throws {CniError} the plugin's error
   */
  call?(req: InProcessRequest): Promise<CniResult | undefined>;
}

/** Finds the plugin for a `type`: a built-in, else an external binary in CNI_PATH. */
export interface PluginRegistry {
  /**
   * The plugin serving `type`, looking in `path` (CNI_PATH) for an external one.
   *
   * @throws {CniError} when no built-in serves `type` and no binary of that name is in `path`
   */
  get(type: string, path: string[]): Promise<Plugin>;
  /**
   * Whether `type` runs in-process (a built-in the caller did not ask to exec). The
   * meta-plugin group-deletes links only of chains made entirely of such plugins.
   */
  inProcess(type: string): boolean;
}

/** Everything a built-in delegate is given besides its parsed conf. */
export interface DelegateContext {
  /** The CNI_* environment of the call. */
  env: PluginEnv;
  /** CNI_ARGS parsed to key/value pairs, in order. */
  cniArgs: Map<string, string>;
  /** The conf object the delegate was called with (unknown keys included). */
  raw: Record<string, unknown>;
  /** The previous plugin's result (canonical), when chained. */
  prevResult?: CniResult;
  /** Runs the IPAM plugin named by `ipam.type` (built in or external) with the same conf. */
  ipam(command: "ADD" | "DEL" | "CHECK" | "GC" | "STATUS"): Promise<CniResult | undefined>;
  /** The traits of the IPAM plugin named by `ipam.type` (empty when there is none). */
  ipamTraits(): Promise<DelegateTraits>;
  /**
   * Runs another plugin (its `type`, built in or exec'd from CNI_PATH) with a conf of the
   * caller's making and this call's env, link group and prevResult, as a meta plugin
   * delegates (libcni's `invoke.DelegateAdd`; the flannel plugin). The conf must carry
   * `name`, `type` and `cniVersion`.
   *
   * @returns the canonical result for ADD, else undefined
   */
  delegate?(
    command: "ADD" | "DEL" | "CHECK" | "GC" | "STATUS",
    conf: Record<string, unknown>,
  ): Promise<CniResult | undefined>;
  /** See {@linkcode PluginRequest.linkGroup}. */
  linkGroup?: number;
}

/**
 * A built-in delegate: the shape of every plugin file under `delegates/main/` and
 * `delegates/ipam/`.
 * `add` returns the canonical result; the adapter converts it to the conf's version.
 */
export interface BuiltinDelegate<C> {
  /** The `type` it serves. */
  readonly type: string;
  /** What callers must know about it (default: nothing). */
  readonly traits?: DelegateTraits;
  /**
   * Validates and defaults a config object.
   *
   * @throws {CniError} code 7 naming the field and value
   */
  parseConf(raw: Record<string, unknown>, env?: PluginEnv): C;
  /** ADD: makes the attachment and returns its canonical result. */
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

/** Loads one built-in delegate module (lazily: only the delegates a call uses are loaded). */
// deno-lint-ignore no-explicit-any
export type BuiltinLoader = () => Promise<BuiltinDelegate<any>>;
