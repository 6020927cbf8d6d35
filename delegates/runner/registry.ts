/**
 * The plugin registry: a `type` is served by a ready-made in-process plugin (the
 * meta-plugin, given by the composition root), else by a built-in delegate (loaded lazily)
 * unless the caller prefers the external binary, else by the binary of that name in
 * CNI_PATH.
 *
 * @module
 */
import { builtinPlugin } from "./builtin.ts";
import { type ExecOptions, execPlugin, findInPath } from "./exec.ts";
import type { BuiltinLoader, Plugin, PluginRegistry } from "../types.ts";

/** Options of {@linkcode createRegistry}. */
export interface RegistryOptions {
  /** The built-in delegates by type (`BUILTINS` of `delegates/catalog.ts`, or a test's). */
  builtins: Readonly<Record<string, BuiltinLoader>>;
  /** Ready-made in-process plugins by type (e.g. the meta-plugin); they win over built-ins. */
  plugins?: Readonly<Record<string, Plugin>>;
  /** Types to run as external binaries even when a built-in exists. */
  preferExternal?: readonly string[];
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
 * const registry = createRegistry({ builtins: BUILTINS, preferExternal: ["dhcp"] });
 * const plugin = await registry.get("bridge", ["/opt/cni/bin"]);
 * ```
 */
export function createRegistry(opts: RegistryOptions): PluginRegistry {
  const table = opts.builtins;
  const ready = opts.plugins ?? {};
  const external = new Set(opts.preferExternal ?? []);
  const loaded = new Map<string, Promise<Plugin>>();
  const builtin = (type: string) => Object.hasOwn(table, type) && !external.has(type);
  const registry: PluginRegistry = {
    async get(type: string, path: string[]): Promise<Plugin> {
      if (Object.hasOwn(ready, type)) return ready[type];
      if (builtin(type)) {
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
      return Object.hasOwn(ready, type) || builtin(type);
    },
  };
  return registry;
}
