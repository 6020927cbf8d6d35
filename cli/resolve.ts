/**
 * Which plugin serves a CNI call's top-level `type`. Its own module so that subcommands can
 * use it without importing `cli/main.ts` (the entry, whose top-level await would deadlock).
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import {
  createRegistry,
  isBuiltin,
  loadMetaPlugin,
  META_TYPE,
} from "../delegates/runner/registry.ts";
import type { Plugin, PluginRegistry } from "../delegates/types.ts";
import type { Resolver } from "./cni.ts";

/**
 * The resolver of a CNI call: `type: "podplex"` is the meta-plugin; when run through a
 * symlink named after a built-in type (`PODPLEX_ARGV0`), that built-in serves the call
 * whatever the conf's type (an IPAM plugin gets its parent's conf); a built-in type is
 * served by its built-in. podplex never execs another binary for the top-level type.
 *
 * @throws {CniError} code 7 for any other type
 */
export function defaultResolver(
  argv0: string | undefined,
  registry: PluginRegistry = createRegistry(),
): Resolver {
  return async (type: string): Promise<Plugin> => {
    if (argv0 && argv0 !== META_TYPE && isBuiltin(argv0)) return await registry.get(argv0, []);
    if (type === META_TYPE) return await loadMetaPlugin();
    if (isBuiltin(type)) return await registry.get(type, []);
    throw new CniError(Code.InvalidConfig, `podplex cannot serve plugin type "${type}"`);
  };
}
