/**
 * The JSON shapes of etcd's gateway (proto3 JSON: bytes in base64, int64 as strings,
 * fields at their default value omitted) and their conversion to the client's types.
 *
 * @module
 */

/** One key as stored in etcd, keys and values decoded as UTF-8. */
export interface KeyValue {
  key: string;
  value: string;
  /** Revision of the key's creation (0 never appears: absent keys are not returned). */
  createRevision: number;
  /** Revision of the key's last change. */
  modRevision: number;
  /** Number of changes since creation (1 after the first put). */
  version: number;
  /** The lease the key is attached to ("0" for none). */
  lease: string;
}

/** A condition of a transaction (etcd's `Compare`). */
export type Compare =
  & {
    key: string;
    /**
     * Compare every key in [key, rangeEnd) (exclusive end key); a range with no key compares
     * as one absent key, so `CREATE EQUAL 0` over a range means "no key in it".
     */
    rangeEnd?: string;
  }
  & (
    | { target: "VALUE"; result: CompareResult; value: string }
    | { target: "VERSION"; result: CompareResult; version: number }
    | { target: "CREATE"; result: CompareResult; createRevision: number }
    | { target: "MOD"; result: CompareResult; modRevision: number }
    | { target: "LEASE"; result: CompareResult; lease: string }
  );

/** How a {@linkcode Compare} compares. */
export type CompareResult = "EQUAL" | "NOT_EQUAL" | "GREATER" | "LESS";

/** One operation of a transaction branch. */
export type Op =
  | { put: { key: string; value: string; lease?: string } }
  | { delete: { key: string; prefix?: boolean } }
  | { range: { key: string; prefix?: boolean; end?: string; keysOnly?: boolean } };

/** The answer to one {@linkcode Op}, in order. */
export type OpResponse =
  | { put: { revision: number } }
  | { delete: { deleted: number } }
  | { range: { kvs: KeyValue[] } };

const enc = new TextEncoder();
const dec = new TextDecoder();

/** base64 of a string's UTF-8 bytes. */
export function b64(s: string): string {
  let bin = "";
  for (const b of enc.encode(s)) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** UTF-8 text of base64 bytes ("" for an absent field). */
export function unb64(s: string | undefined): string {
  if (!s) return "";
  const bin = atob(s);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return dec.decode(bytes);
}

/**
 * The `range_end` that makes a range cover every key starting with `prefix`: the prefix with
 * its last byte incremented (etcd's rule; "\0" means "to the end" for an empty prefix).
 */
export function prefixEnd(prefix: string): string {
  const bytes = enc.encode(prefix);
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i] < 0xff) {
      const out = bytes.slice(0, i + 1);
      out[i]++;
      let bin = "";
      for (const b of out) bin += String.fromCharCode(b);
      return btoa(bin);
    }
  }
  return btoa("\0");
}

// deno-lint-ignore no-explicit-any
type J = any;

/** A gateway `mvccpb.KeyValue` to {@linkcode KeyValue}. */
export function toKv(j: J): KeyValue {
  return {
    key: unb64(j.key),
    value: unb64(j.value),
    createRevision: Number(j.create_revision ?? 0),
    modRevision: Number(j.mod_revision ?? 0),
    version: Number(j.version ?? 0),
    lease: String(j.lease ?? "0"),
  };
}

/** A range request body for `key` (or every key under it with `prefix`). */
export function rangeBody(
  key: string,
  prefix = false,
  extra: Record<string, unknown> = {},
  end?: string,
): J {
  const body: J = { key: b64(key), ...extra };
  if (prefix) body.range_end = prefixEnd(key);
  else if (end !== undefined) body.range_end = b64(end);
  return body;
}

/** A {@linkcode Compare} in the gateway's shape. */
export function compareJson(c: Compare): J {
  const out: J = { key: b64(c.key), target: c.target, result: c.result };
  if (c.rangeEnd !== undefined) out.range_end = b64(c.rangeEnd);
  if (c.target === "VALUE") out.value = b64(c.value);
  else if (c.target === "VERSION") out.version = String(c.version);
  else if (c.target === "CREATE") out.create_revision = String(c.createRevision);
  else if (c.target === "MOD") out.mod_revision = String(c.modRevision);
  else out.lease = c.lease;
  return out;
}

/** An {@linkcode Op} in the gateway's shape (`request_put`, ...). */
export function opJson(op: Op): J {
  if ("put" in op) {
    const p: J = { key: b64(op.put.key), value: b64(op.put.value) };
    if (op.put.lease && op.put.lease !== "0") p.lease = op.put.lease;
    return { request_put: p };
  }
  if ("delete" in op) return { request_delete_range: rangeBody(op.delete.key, op.delete.prefix) };
  const r = op.range;
  return {
    request_range: rangeBody(r.key, r.prefix, r.keysOnly ? { keys_only: true } : {}, r.end),
  };
}

/** A gateway `ResponseOp` to {@linkcode OpResponse}. */
export function opResponse(j: J): OpResponse {
  if (j.response_put) return { put: { revision: Number(j.response_put.header?.revision ?? 0) } };
  if (j.response_delete_range) {
    return { delete: { deleted: Number(j.response_delete_range.deleted ?? 0) } };
  }
  return { range: { kvs: (j.response_range?.kvs ?? []).map(toKv) } };
}
