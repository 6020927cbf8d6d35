/**
 * Test doubles of the runner's contracts, shared by every test that needs a registry or a
 * plugin it controls (`*_test.ts` only; not part of podplex).
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import type { Plugin, PluginRegistry } from "../types.ts";

/**
 * A registry over the given plugins: a function of the type, or a table. A type it does not
 * have fails as a missing binary does (code 7); `onGet` sees every type asked for.
 *
 * @example
 * ```ts
 * const registry = fakeRegistry({ a: fakePlugin("a", () => Promise.resolve(undefined)) });
 * ```
 */
export function fakeRegistry(
  plugins: Readonly<Record<string, Plugin>> | ((type: string) => Plugin | undefined),
  onGet?: (type: string) => void,
): PluginRegistry {
  const find = typeof plugins === "function"
    ? plugins
    : (type: string) => Object.hasOwn(plugins, type) ? plugins[type] : undefined;
  return {
    get(type: string): Promise<Plugin> {
      onGet?.(type);
      const plugin = find(type);
      if (plugin) return Promise.resolve(plugin);
      return Promise.reject(
        new CniError(Code.InvalidConfig, `No plugin "${type}" in the fake registry`),
      );
    },
    inProcess(type: string): boolean {
      return find(type)?.call !== undefined;
    },
  };
}

/**
 * A plugin with the bytes contract only (as an external binary has), answering with
 * `invoke`; `extra` sets traits or a `call`.
 */
export function fakePlugin(
  type: string,
  invoke: Plugin["invoke"],
  extra: Partial<Omit<Plugin, "type" | "invoke">> = {},
): Plugin {
  return { type, builtin: false, traits: {}, invoke, ...extra };
}
