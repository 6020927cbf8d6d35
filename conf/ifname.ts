/**
 * Interface (link) names as the kernel's `dev_valid_name` and libcni's ValidateInterfaceName
 * take them: 1–15 bytes (IFNAMSIZ less the NUL), not `.` or `..`, no `/`, `:` or whitespace.
 * One rule for CNI_IFNAME, requested interface names and every link name in a conf.
 *
 * @module
 */

/** The longest link name in bytes (IFNAMSIZ - 1). */
export const MAX_IFNAME_BYTES = 15;

// Go's unicode.IsSpace: ASCII and Latin-1 spaces plus the Unicode White_Space set.
const IFNAME_BAD = /[/:\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

/**
 * Why `name` is not a valid link name, or undefined when it is.
 *
 * @example
 * ```ts
 * ifnameProblem("eth0"); // undefined
 * ifnameProblem("a-very-long-bridge"); // "longer than 15 bytes"
 * ```
 */
export function ifnameProblem(name: string): string | undefined {
  if (name === "") return "the name is empty";
  if (new TextEncoder().encode(name).length > MAX_IFNAME_BYTES) {
    return `longer than ${MAX_IFNAME_BYTES} bytes`;
  }
  if (name === "." || name === "..") return `"." and ".." are not interface names`;
  if (IFNAME_BAD.test(name)) return `contains "/", ":" or whitespace`;
  return undefined;
}
