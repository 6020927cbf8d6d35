/**
 * The plugin registry: a `type` is served by a built-in delegate (in-process, loaded lazily)
 * unless the caller prefers the external binary, else by the binary of that name in
 * CNI_PATH.
 *
 * @module
 */
import { builtinPlugin } from "./builtin.ts";
import { type ExecOptions, execPlugin, findInPath } from "./exec.ts";
import type { BuiltinDelegate, Plugin, PluginRegistry } from "../types.ts";

/** Loads one built-in delegate module (lazily: only the delegates a call uses are loaded). */
// deno-lint-ignore no-explicit-any
export type BuiltinLoader = () => Promise<BuiltinDelegate<any>>;

/**
 * The built-in delegates by type. Each entry is a lazy import, e.g.
 * `bridge: async () => (await import("../main/bridge.ts")).bridge`.
 */
export const BUILTINS: Record<string, BuiltinLoader> = {
  bridge: () => import("../main/bridge.ts").then((m) => m.bridge),
  macvlan: () => import("../main/macvlan.ts").then((m) => m.macvlan),
  ipvlan: () => import("../main/ipvlan.ts").then((m) => m.ipvlan),
  vxlan: () => import("../main/vxlan.ts").then((m) => m.vxlan),
  loopback: () => import("../main/loopback.ts").then((m) => m.loopback),
  "host-local": () => import("../ipam/host_local/host_local.ts").then((m) => m.hostLocal),
  static: () => import("../ipam/static.ts").then((m) => m.staticIpam),
};

/** The types served in-process (as of module load; {@linkcode isBuiltin} is live). */
export const BUILTIN_TYPES: readonly string[] = Object.keys(BUILTINS);

/** Whether a built-in delegate serves `type`. */
export function isBuiltin(type: string): boolean {
  return Object.hasOwn(BUILTINS, type);
}

/** The `type` of podplex's own conf entry (the meta-plugin). */
export const META_TYPE = "podplex";

/**
 * Loads the meta-plugin (the plugin for `type: "podplex"`).
 *
 * @throws {Error} when the module cannot be loaded
 */
export async function loadMetaPlugin(): Promise<Plugin> {
  return (await import("../../meta/plugin.ts")).metaPlugin;
}

/** Options of {@linkcode createRegistry}. */
export interface RegistryOptions {
  /** Types to run as external binaries even when a built-in exists. */
  preferExternal?: readonly string[];
  /** Replaces {@linkcode BUILTINS} (tests, embedding). */
  builtins?: Record<string, BuiltinLoader>;
  /** Options for external plugins (stderr sink, timeout). */
  exec?: ExecOptions;
}

/**
 * Creates a registry. Built-in plugins are created once per type and registry; external
 * ones are looked up in the request's CNI_PATH on every `get` (so a missing binary fails
 * early, before a chain starts).
 *
 * @example
 * ```ts
 * const registry = createRegistry({ preferExternal: ["dhcp"] });
 * const plugin = await registry.get("bridge", ["/opt/cni/bin"]);
 * ```
 */
export function createRegistry(opts: RegistryOptions = {}): PluginRegistry {
  const table = opts.builtins ?? BUILTINS;
  const external = new Set(opts.preferExternal ?? []);
  const loaded = new Map<string, Promise<Plugin>>();
  const registry: PluginRegistry = {
    async get(type: string, path: string[]): Promise<Plugin> {
      if (Object.hasOwn(table, type) && !external.has(type)) {
        let plugin = loaded.get(type);
        if (!plugin) {
          plugin = table[type]().then((d) => builtinPlugin(d, () => registry));
          loaded.set(type, plugin);
          plugin.catch(() => loaded.delete(type));
        }
        return await plugin;
      }
      await findInPath(type, path);
      return execPlugin(type, opts.exec);
    },
    inProcess(type: string): boolean {
      return Object.hasOwn(table, type) && !external.has(type);
    },
  };
  return registry;
}
