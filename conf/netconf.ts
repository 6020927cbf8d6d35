/**
 * Network configurations (spec 1.1.0 "Configuration format"): a single plugin conf and a
 * conflist, checked by hand in ./_netconf_check.ts (zod cost 5-7 ms of every CNI call).
 * Unknown keys are kept: a plugin conf is passed on to its plugin byte for byte, so each
 * plugin entry keeps the exact bytes it had in the file.
 *
 * @module
 */
import { jsonErrorSummary, readBoundedSync } from "./bounded_read.ts";
import { CniError, Code } from "./errors.ts";
import { checkConfListFields, type Checked, checkNetConf } from "./_netconf_check.ts";
import type { NetConf } from "./types.ts";
import { compareVersions, IMPLICIT_VERSION, isSupported, SUPPORTED_VERSIONS } from "./version.ts";

export type { ConfListFields, NetConf } from "./types.ts";

/** A single network conf: the parsed object, its effective version and its exact bytes. */
export interface ParsedNetConf {
  /** The parsed conf. */
  conf: NetConf;
  /** The highest supported version of `cniVersion` ∪ `cniVersions` (0.1.0 when none). */
  cniVersion: string;
  /** The exact bytes it was parsed from. */
  bytes: Uint8Array;
}

/** One plugin of a conflist: its type, parsed conf and the exact bytes it had. */
export interface PluginEntry {
  /** The plugin's `type`. */
  type: string;
  /** The parsed entry. */
  conf: NetConf;
  /** The entry's original bytes (never re-marshalled: cache and forward these). */
  bytes: Uint8Array;
}

/** A conflist (or a single conf turned into a one-plugin list). */
export interface ConfList {
  /** The network name. */
  name: string;
  /** The effective version (highest supported of `cniVersion` and `cniVersions`). */
  cniVersion: string;
  /** CHECK is skipped for this network. */
  disableCheck: boolean;
  /** GC is skipped for this network. */
  disableGC: boolean;
  /** The plugins in chain order. */
  plugins: PluginEntry[];
  /** The top-level object, unknown keys included. */
  raw: Record<string, unknown>;
  /** The bytes the list was parsed from. */
  bytes: Uint8Array;
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Checks a network name as the spec and libcni do.
 *
 * @throws {CniError} code 7 when it is empty or has other characters than `[a-zA-Z0-9_.-]`
 */
export function validateNetworkName(name: string | undefined): string {
  if (!name) throw new CniError(Code.InvalidConfig, `Missing network "name"`);
  if (!NAME.test(name)) {
    throw new CniError(
      Code.InvalidConfig,
      `Invalid network "name": "${name}" must match ${NAME.source}`,
    );
  }
  return name;
}

/**
 * The effective version of a conf: the highest of `cniVersion` ∪ `cniVersions` that podplex
 * supports; 0.1.0 when both are missing.
 *
 * @throws {CniError} code 1 when versions are named but none is supported
 */
export function resolveVersion(cniVersion?: string, cniVersions?: readonly string[]): string {
  const named = [...(cniVersions ?? []), ...(cniVersion ? [cniVersion] : [])];
  if (named.length === 0) return IMPLICIT_VERSION;
  const ok = named.filter(isSupported).sort(compareVersions);
  if (ok.length === 0) {
    throw new CniError(
      Code.IncompatibleVersion,
      `Incompatible CNI version ${named.map((v) => `"${v}"`).join(", ")}`,
      `supported versions: ${SUPPORTED_VERSIONS.join(", ")}`,
    );
  }
  return ok[ok.length - 1];
}

function toText(input: Uint8Array | string): { text: string; bytes: Uint8Array } {
  return typeof input === "string"
    ? { text: input, bytes: encoder.encode(input) }
    : { text: decoder.decode(input), bytes: input };
}

function decodeJson(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new CniError(Code.DecodeFailure, `Cannot decode ${what}: ${jsonErrorSummary(e)}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CniError(Code.DecodeFailure, `Cannot decode ${what}: not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function checkFields<T>(
  check: (v: unknown) => Checked<T>,
  value: unknown,
  what: string,
  at = "",
): T {
  const r = check(value);
  if (r.ok) return r.value;
  const { issue } = r;
  const path = at + issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))
    .join("").replace(/^\./, "");
  const got = path ? lookup(value, issue.path) : value;
  throw new CniError(
    Code.InvalidConfig,
    `Invalid ${what}: "${path || "(top level)"}" ${describeIssue(issue.code, got)}`,
  );
}

function lookup(value: unknown, path: readonly PropertyKey[]): unknown {
  let v = value;
  for (const p of path) v = (v as Record<PropertyKey, unknown> | undefined)?.[p];
  return v;
}

function describeIssue(code: string, got: unknown): string {
  if (got === undefined) return "is missing";
  const text = JSON.stringify(got);
  return `is ${text && text.length > 40 ? text.slice(0, 40) + "..." : text} (${code})`;
}

/**
 * Parses one plugin's conf (what a runtime writes to a plugin's stdin, or a `.conf` file).
 *
 * @param input the conf's bytes or text
 * @param opts.requireName whether `name` must be present (true by default; chained plugin
 *   entries get it injected)
 * @throws {CniError} 6 when not a JSON object; 7 on a bad field (named); 1 on an
 *   unsupported version
 */
export function parseNetConf(
  input: Uint8Array | string,
  opts: { requireName?: boolean } = {},
): ParsedNetConf {
  const { text, bytes } = toText(input);
  const conf = checkFields(checkNetConf, decodeJson(text, "network config"), "network config");
  if (opts.requireName ?? true) validateNetworkName(conf.name);
  else if (conf.name !== undefined && conf.name !== "") validateNetworkName(conf.name);
  return { conf, cniVersion: resolveVersion(conf.cniVersion, conf.cniVersions), bytes };
}

function asBool(v: boolean | string | undefined): boolean {
  return typeof v === "string" ? v.toLowerCase() === "true" : v === true;
}

/** The most plugins one chain may have (each runs on every ADD and DEL). */
export const MAX_CHAIN_PLUGINS = 64;

/**
 * Parses a conflist. Each plugin entry keeps its exact bytes from `input`.
 *
 * @throws {CniError} 6 when not a JSON object; 7 on a bad field (named), a bad network name
 *   or an empty `plugins`; 1 on an unsupported version
 */
export function parseConfList(input: Uint8Array | string): ConfList {
  const { text, bytes } = toText(input);
  const raw = decodeJson(text, "network config list");
  const list = checkFields(checkConfListFields, raw, "network config list");
  validateNetworkName(list.name);
  if (list.plugins.length > MAX_CHAIN_PLUGINS) {
    throw new CniError(
      Code.InvalidConfig,
      `Invalid "plugins" in network config list "${list.name}": ${list.plugins.length} ` +
        `plugins; a chain has at most ${MAX_CHAIN_PLUGINS}`,
    );
  }
  const spans = pluginSpans(text);
  const plugins = list.plugins.map((p, i): PluginEntry => {
    const conf = checkFields(checkNetConf, p, "network config list", `plugins[${i}].`);
    const span = spans?.[i];
    const entryBytes = span
      ? encoder.encode(text.slice(span[0], span[1]))
      : encoder.encode(JSON.stringify(p));
    return { type: conf.type, conf, bytes: entryBytes };
  });
  return {
    name: list.name,
    cniVersion: resolveVersion(list.cniVersion, list.cniVersions),
    disableCheck: asBool(list.disableCheck),
    disableGC: asBool(list.disableGC),
    plugins,
    raw,
    bytes,
  };
}

/**
 * Makes a one-plugin list of a single conf, as libcni's ConfListFromConf does; the plugin
 * keeps the conf's exact bytes.
 */
export function confListFromConf(single: ParsedNetConf): ConfList {
  const name = validateNetworkName(single.conf.name);
  return {
    name,
    cniVersion: single.cniVersion,
    disableCheck: asBool(single.conf.disableCheck),
    disableGC: asBool(single.conf.disableGC),
    plugins: [{ type: single.conf.type, conf: single.conf, bytes: single.bytes }],
    raw: { name, cniVersion: single.cniVersion, plugins: [single.conf] },
    bytes: single.bytes,
  };
}

/**
 * Parses either a conflist (an object with `plugins`) or a single conf (made a one-plugin
 * list); for configs whose kind is not known from a file name (e.g. a NAD's `spec.config`).
 *
 * @throws {CniError} as {@linkcode parseConfList} and {@linkcode parseNetConf}
 */
export function parseConfOrList(input: Uint8Array | string): ConfList {
  const { text } = toText(input);
  const raw = decodeJson(text, "network config");
  return "plugins" in raw ? parseConfList(input) : confListFromConf(parseNetConf(input));
}

/**
 * Loads a network config file: `.conflist` as a list, `.conf`/`.json` as a single conf made
 * a one-plugin list, any other name by content.
 *
 * @throws {CniError} 5 when the file cannot be read; 7 when it is not a regular file or is
 *   larger than MAX_FILE_BYTES; else as the parsers
 */
export function loadConfFile(path: string): Promise<ConfList> {
  try {
    return Promise.resolve(loadConfFileSync(path));
  } catch (e) {
    return Promise.reject(e);
  }
}

function loadConfFileSync(path: string): ConfList {
  // A regular file of bounded size: a FIFO or a link to /dev/zero fails at once (code 7).
  const bytes = readBoundedSync(path, { what: "network config" });
  if (bytes === null) {
    throw new CniError(Code.IoFailure, `Cannot read network config "${path}": no such file`);
  }
  try {
    if (path.endsWith(".conflist")) return parseConfList(bytes);
    if (path.endsWith(".conf") || path.endsWith(".json")) {
      return confListFromConf(parseNetConf(bytes));
    }
    return parseConfOrList(bytes);
  } catch (e) {
    throw CniError.wrap(e, Code.InvalidConfig, `In "${path}"`);
  }
}

/**
 * Returns a plugin conf's bytes with `values` set at the top level and every other key kept
 * (parse, set, stringify: what libcni's InjectConf does). Undefined values are not set.
 */
export function injectConf(bytes: Uint8Array, values: Record<string, unknown>): Uint8Array {
  const obj = decodeJson(decoder.decode(bytes), "plugin config");
  for (const [k, v] of Object.entries(values)) if (v !== undefined) obj[k] = v;
  return encoder.encode(JSON.stringify(obj));
}

// --- byte spans of `plugins[i]` in already-validated JSON text ---

function skipWs(s: string, i: number): number {
  while (i < s.length && (s[i] === " " || s[i] === "\t" || s[i] === "\n" || s[i] === "\r")) i++;
  return i;
}

function skipString(s: string, i: number): number {
  for (i++; s[i] !== '"'; i++) if (s[i] === "\\") i++;
  return i + 1;
}

function skipValue(s: string, i: number): number {
  if (s[i] === '"') return skipString(s, i);
  if (s[i] !== "{" && s[i] !== "[") {
    while (i < s.length && !",}] \t\n\r".includes(s[i])) i++;
    return i;
  }
  let depth = 0;
  for (; i < s.length; i++) {
    const c = s[i];
    if (c === '"') i = skipString(s, i) - 1;
    else if (c === "{" || c === "[") depth++;
    else if ((c === "}" || c === "]") && --depth === 0) return i + 1;
  }
  return i;
}

function arraySpans(s: string, i: number): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  i = skipWs(s, i + 1);
  while (s[i] !== "]") {
    const end = skipValue(s, i);
    spans.push([i, end]);
    i = skipWs(s, end);
    if (s[i] === ",") i = skipWs(s, i + 1);
  }
  return spans;
}

/** The spans of the top-level `plugins` array's elements (the last `plugins` key wins). */
function pluginSpans(s: string): Array<[number, number]> | undefined {
  let spans: Array<[number, number]> | undefined;
  let i = skipWs(s, 0) + 1;
  for (i = skipWs(s, i); s[i] === '"'; i = skipWs(s, i)) {
    const keyEnd = skipString(s, i);
    const key = JSON.parse(s.slice(i, keyEnd));
    const valueStart = skipWs(s, skipWs(s, keyEnd) + 1);
    const valueEnd = skipValue(s, valueStart);
    if (key === "plugins" && s[valueStart] === "[") spans = arraySpans(s, valueStart);
    i = skipWs(s, valueEnd);
    if (s[i] === ",") i++;
  }
  return spans;
}
