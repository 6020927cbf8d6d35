/**
 * CNI_ARGS (`K=V;K=V`) as the Go library reads it (pkg/types/args.go): every pair splits into
 * exactly two on `=`, and keys a plugin does not know are an error unless
 * `IgnoreUnknown=1|true`.
 *
 * @module
 */
import { CniError, Code } from "./errors.ts";

/** The keys runtimes send (CONVENTIONS.md, containerd, CRI-O, podman). */
export const WELL_KNOWN_CNI_ARGS: readonly string[] = [
  "IgnoreUnknown",
  "K8S_POD_NAMESPACE",
  "K8S_POD_NAME",
  "K8S_POD_INFRA_CONTAINER_ID",
  "K8S_POD_UID",
  "IP",
  "MAC",
];

/**
 * Parses CNI_ARGS into key/value pairs in order. An empty or missing string gives an empty
 * map; a later duplicate key overwrites an earlier one (as Go's field assignment does).
 *
 * @throws {CniError} code 4 naming the first pair that does not split into exactly two on
 *   `=` (an empty pair, e.g. from a trailing `;`, is such a pair, as in Go)
 *
 * @example
 * ```ts
 * parseCniArgs("IgnoreUnknown=1;K8S_POD_NAME=web").get("K8S_POD_NAME"); // "web"
 * ```
 */
export function parseCniArgs(args: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!args) return out;
  for (const pair of args.split(";")) {
    const kv = pair.split("=");
    if (kv.length !== 2) {
      throw new CniError(
        Code.InvalidEnv,
        `Invalid CNI_ARGS pair "${pair}": expected exactly one "=" as in K=V`,
      );
    }
    out.set(kv[0], kv[1]);
  }
  return out;
}

/**
 * Reads a CNI_ARGS boolean as Go's UnmarshallableBool does: `1`/`true` and `0`/`false`,
 * case-insensitive.
 *
 * @throws {CniError} code 4 naming the key and the value
 */
export function parseArgBool(key: string, value: string): boolean {
  const v = value.toLowerCase();
  if (v === "1" || v === "true") return true;
  if (v === "0" || v === "false") return false;
  throw new CniError(
    Code.InvalidEnv,
    `Invalid CNI_ARGS value "${key}=${value}": expected 1, true, 0 or false`,
  );
}

/**
 * Checks parsed CNI_ARGS against the keys a plugin knows. Unknown keys are an error unless
 * `IgnoreUnknown` is `1` or `true`.
 *
 * @param known the keys accepted; `IgnoreUnknown` is always accepted
 * @returns the same map, for chaining
 * @throws {CniError} code 4 naming the unknown pairs, or a bad `IgnoreUnknown` value
 */
export function validateCniArgs(
  args: Map<string, string>,
  known: readonly string[] = WELL_KNOWN_CNI_ARGS,
): Map<string, string> {
  const ignore = args.get("IgnoreUnknown");
  const ignoreUnknown = ignore !== undefined && parseArgBool("IgnoreUnknown", ignore);
  if (ignoreUnknown) return args;
  const unknown = [...args].filter(([k]) => k !== "IgnoreUnknown" && !known.includes(k));
  if (unknown.length) {
    const pairs = unknown.map(([k, v]) => `"${k}=${v}"`).join(", ");
    throw new CniError(
      Code.InvalidEnv,
      `Unknown CNI_ARGS ${pairs}`,
      `known keys: ${known.join(", ")}; add IgnoreUnknown=1 to ignore others`,
    );
  }
  return args;
}
