/**
 * Reading decoded JSON as Go's encoding/json does for the structs of the reference plugins
 * and of containerd: objects told apart from arrays and null, keys matched exactly first and
 * then case-insensitively (containerd marshals Go structs without JSON tags, so keys can
 * arrive capitalised: `HostPort`, `Subnet`).
 *
 * @module
 */

/** A decoded JSON object. */
export type JsonObject = Record<string, unknown>;

/** Whether `v` is a plain JSON object (not an array, not null). */
export function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * The key of `obj` that `key` names: `key` itself when present, else the first key equal to
 * it ignoring case; undefined when none.
 */
export function keyOf(obj: JsonObject, key: string): string | undefined {
  if (Object.hasOwn(obj, key)) return key;
  const lower = key.toLowerCase();
  return Object.keys(obj).find((k) => k.toLowerCase() === lower);
}

/**
 * The value of `key` in `obj`, matched as {@linkcode keyOf} does.
 *
 * @example
 * ```ts
 * fieldOf({ HostPort: 8080 }, "hostPort"); // 8080
 * ```
 */
export function fieldOf(obj: JsonObject | undefined, key: string): unknown {
  if (!obj) return undefined;
  const k = keyOf(obj, key);
  return k === undefined ? undefined : obj[k];
}
