/**
 * The local policy source as every CNI call opens it: a cheap synchronous look at the
 * policiesDir decides whether there can be any policy at all, and only then are the policy
 * modules (parse, resolve, render, local, enforce) imported, on the first question asked.
 * A node without local policies (most of them) thus never loads nor compiles that code in
 * its per-call ADD or DEL: the bundle turns each dynamic import into a chunk loaded when it
 * runs (scripts/artifact.sh).
 *
 * This module imports types only; keep it so (`meta/policy/lazy_test.ts` checks the graph).
 *
 * @module
 */
import type { LocalSourceOptions } from "./local.ts";
import type { PolicySource } from "./source.ts";

/** A file name the local loader reads (meta/policy/local.ts: `*.{yaml,yml,json}`). */
const POLICY_FILE = /\.(ya?ml|json)$/;

/** The entries of a folder (none when it does not exist), undefined when it cannot be read. */
function names(dir: string): Deno.DirEntry[] | undefined {
  try {
    return [...Deno.readDirSync(dir)].filter((e) => !e.name.startsWith("."));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return [];
    return undefined;
  }
}

/**
 * Whether `dir` holds a file the local loader would read (`<dir>/<namespace>/*.{yaml,yml,
 * json}`). Synchronous on purpose: an ADD asks on its main thread, where an async file call
 * waits for a pool thread. A missing or empty folder, or one of empty namespaces, holds no
 * policy: the source would answer undefined for every pod and tell no peer. A folder that
 * cannot be read (permissions) counts as holding some: the loader then fails the ADD with
 * its own error, as it did before this look.
 */
export function hasPolicyFiles(dir: string): boolean {
  const top = names(dir);
  if (!top) return true;
  return top.some((ns) => {
    if (!ns.isDirectory) return false;
    const files = names(`${dir}/${ns.name}`);
    return !files || files.some((f) => f.isFile && POLICY_FILE.test(f.name));
  });
}

/**
 * The local source of `dir` (meta/policy/local.ts's `localPolicySource`), or undefined when
 * the folder holds no policy file. The source's module is imported on its first use and the
 * source made once, so the ADD's step and the peers' update share its one read.
 */
export function lazyLocalSource(
  dir: string,
  opts: LocalSourceOptions,
): PolicySource | undefined {
  if (!hasPolicyFiles(dir)) return undefined;
  let source: Promise<PolicySource> | undefined;
  const open = () => source ??= import("./local.ts").then((m) => m.localPolicySource(dir, opts));
  return {
    async worldFor(pod) {
      return (await open()).worldFor(pod);
    },
    async podChanged(pod, gone) {
      await (await open()).podChanged?.(pod, gone);
    },
  };
}
