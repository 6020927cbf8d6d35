/**
 * Paths of one call: a relative path in the CNI environment or a conf means what it means
 * in the caller's working directory. A per-call process has that directory as its own; a
 * resident daemon (`podplex serve`) serves callers from many, so it resolves their paths
 * instead of changing its own directory.
 *
 * @module
 */

/**
 * `path` resolved against `cwd`: unchanged when it is absolute or empty, or when there is
 * no `cwd` (the process's own directory then applies).
 *
 * @example
 * ```ts
 * resolveIn("/home/me", "state"); // "/home/me/state"
 * resolveIn(undefined, "state"); // "state"
 * ```
 */
export function resolveIn(cwd: string | undefined, path: string): string {
  if (!cwd || path === "" || path.startsWith("/")) return path;
  return cwd.endsWith("/") ? cwd + path : `${cwd}/${path}`;
}
