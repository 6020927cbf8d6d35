/**
 * Hand-written validation of a plugin conf and a conflist's top level, in place of zod
 * schemas: loading zod and its first parse cost 5-7 ms of every CNI call, these checks a few
 * microseconds. They keep what the schemas did: the first problem in field order, reported
 * with zod's issue codes (`invalid_type`, `too_small`, `invalid_format`, `invalid_union`),
 * and an output object that lists the known fields first (copied, as zod copies them) with
 * unknown keys kept.
 *
 * @module
 */
import type { ConfListFields, NetConf } from "./types.ts";
import { isObject as isObj } from "./json.ts";

/** Where a value failed and why (a zod issue code). */
export interface Issue {
  path: Array<string | number>;
  code: string;
}

/** The checked value, or the first issue. */
export type Checked<T> = { ok: true; value: T } | { ok: false; issue: Issue };

type Obj = Record<string, unknown>;

/** Thrown inside a check and caught by {@linkcode run}: the first issue ends the check. */
class Fail {
  constructor(readonly issue: Issue) {}
}

function fail(path: Array<string | number>, code = "invalid_type"): never {
  throw new Fail({ path, code });
}

function run<T>(check: () => T): Checked<T> {
  try {
    return { ok: true, value: check() };
  } catch (e) {
    if (e instanceof Fail) return { ok: false, issue: e.issue };
    throw e;
  }
}

// Each checker takes a present (not undefined) value and returns what zod's output held.

function str(v: unknown, path: Array<string | number>): string {
  return typeof v === "string" ? v : fail(path);
}

function strings(v: unknown, path: Array<string | number>): string[] {
  if (!Array.isArray(v)) fail(path);
  return v.map((s, i) => str(s, [...path, i]));
}

function bool(v: unknown, path: Array<string | number>): boolean {
  return typeof v === "boolean" ? v : fail(path);
}

/** libcni reads these booleans from a bool or a "true"/"false" string (any case). */
function looseBool(v: unknown, path: Array<string | number>): boolean | string {
  if (typeof v === "boolean") return v;
  if (typeof v !== "string") fail(path, "invalid_union");
  return /^(true|false)$/i.test(v) ? v : fail(path, "invalid_format");
}

function record<T>(
  v: unknown,
  path: Array<string | number>,
  value: (v: unknown, path: Array<string | number>) => T,
): Record<string, T> {
  if (!isObj(v)) fail(path);
  const out: Record<string, T> = {};
  for (const k of Object.keys(v)) out[k] = value(v[k], [...path, k]);
  return out;
}

const anyValue = (v: unknown) => v;

type Field = (v: unknown, path: Array<string | number>) => unknown;

/** Checks the known fields of `v` in order (absent optional ones skipped), keeps the rest. */
function looseObject(
  v: unknown,
  path: Array<string | number>,
  fields: Record<string, Field>,
  required: readonly string[] = [],
): Obj {
  if (!isObj(v)) fail(path);
  const out: Obj = {};
  for (const [key, check] of Object.entries(fields)) {
    const value = v[key];
    if (value === undefined) {
      if (required.includes(key)) fail([...path, key]);
      continue;
    }
    out[key] = check(value, [...path, key]);
  }
  for (const key of Object.keys(v)) if (!(key in fields)) out[key] = v[key];
  return out;
}

const IPAM: Record<string, Field> = { type: str };

const DNS: Record<string, Field> = {
  nameservers: strings,
  domain: str,
  search: strings,
  options: strings,
};

function pluginType(v: unknown, path: Array<string | number>): string {
  return str(v, path).length >= 1 ? v as string : fail(path, "too_small");
}

const NET_CONF: Record<string, Field> = {
  cniVersion: str,
  cniVersions: strings,
  name: str,
  type: pluginType,
  disableCheck: looseBool,
  disableGC: looseBool,
  capabilities: (v, p) => record(v, p, bool),
  ipam: (v, p) => looseObject(v, p, IPAM),
  dns: (v, p) => looseObject(v, p, DNS),
  args: (v, p) => record(v, p, anyValue),
  runtimeConfig: (v, p) => record(v, p, anyValue),
  prevResult: (v, p) => record(v, p, anyValue),
  ipMasq: bool,
};

function pluginList(v: unknown, path: Array<string | number>): Obj[] {
  if (!Array.isArray(v)) fail(path);
  const out = v.map((p, i) => record(p, [...path, i], anyValue));
  return out.length >= 1 ? out : fail(path, "too_small");
}

const CONF_LIST: Record<string, Field> = {
  cniVersion: str,
  cniVersions: strings,
  name: str,
  disableCheck: looseBool,
  disableGC: looseBool,
  plugins: pluginList,
};

/** Checks one plugin's conf (`type` required; unknown keys kept). */
export function checkNetConf(v: unknown): Checked<NetConf> {
  return run(() => looseObject(v, [], NET_CONF, ["type"]) as NetConf);
}

/** Checks a conflist's top level (`name` and a non-empty `plugins` of objects required). */
export function checkConfListFields(v: unknown): Checked<ConfListFields> {
  return run(() => looseObject(v, [], CONF_LIST, ["name", "plugins"]) as ConfListFields);
}
