/**
 * The JSON form of the networks annotation decoded as strictly as Multus's typed decode
 * (Go's `encoding/json` into `[]*NetworkSelectionElement`): keys matched exactly, else
 * case-insensitively; `null` leaves a field unset; unknown keys ignored (podplex warns);
 * a string field takes only a string, an `int` field only an integer literal (`8080`, not
 * `"8080"`, `80.0` or `8e3`), a list only a list. A wrong type is code 7 naming the field path
 * and the value.
 *
 * Integer literals are told from floats by the JSON source text (the reviver's `source`,
 * V8's JSON.parse source text access): `JSON.parse` alone reads `80.0` as 80.
 *
 * @module
 */
import type { CniError } from "../conf/errors.ts";
import { isObject as isPlainObject } from "../conf/json.ts";

type Obj = Record<string, unknown>;

/** A field's Go type, as far as decoding cares. */
type FieldType =
  | "string"
  | "stringList"
  | "int"
  | "map"
  | { struct: Spec }
  | { list: Spec };

/** Field name (as Go's json tag) → type. */
type Spec = Record<string, FieldType>;

const PORT_MAP_ENTRY: Spec = {
  hostPort: "int",
  containerPort: "int",
  protocol: "string",
  hostIP: "string",
};

const BANDWIDTH_ENTRY: Spec = {
  ingressRate: "int",
  ingressBurst: "int",
  egressRate: "int",
  egressBurst: "int",
};

/** Multus's NetworkSelectionElement (pkg/types). */
export const SELECTION_SPEC: Spec = {
  name: "string",
  namespace: "string",
  ips: "stringList",
  mac: "string",
  "infiniband-guid": "string",
  interface: "string",
  interfaceRequest: "string",
  portMappings: { list: PORT_MAP_ENTRY },
  bandwidth: { struct: BANDWIDTH_ENTRY },
  deviceID: "string",
  "cni-args": "map",
  "default-route": "stringList",
};

/** Bounds on what one annotation may hold (a pod's author controls all of it). */
export const LIMITS = {
  /** Kubernetes' limit on all of a pod's annotations together (TotalAnnotationSizeLimitB). */
  bytes: 256 * 1024,
  /** Networks in one annotation: each is an interface and a chain run in the pod. */
  networks: 128,
  /** Nesting of the JSON form (`cni-args` objects included). */
  depth: 32,
} as const;

/** A parsed JSON document with the source text of each number literal. */
export interface ParsedJson {
  value: unknown;
  /** holder object/array → key → the number's literal as written. */
  numbers: WeakMap<object, Map<string, string>>;
}

/** Quotes a pod-controlled value for a message: JSON-escaped and cut to a readable length. */
export function quote(v: unknown, max = 120): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > max ? `${s.slice(0, max)}...(${s.length} characters)` : s;
}

/** The deepest `[`/`{` nesting of a JSON text (strings skipped). */
function nestingDepth(text: string): number {
  let depth = 0, max = 0, inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "[" || c === "{") max = Math.max(max, ++depth);
    else if (c === "]" || c === "}") depth--;
  }
  return max;
}

/**
 * Parses JSON keeping each number's literal, refusing documents nested deeper than
 * {@linkcode LIMITS}.depth.
 *
 * @param bad makes the error for a message
 * @throws {CniError} from `bad` when the text is not JSON or nested too deep
 */
export function parseJsonWithNumbers(text: string, bad: (msg: string) => CniError): ParsedJson {
  const depth = nestingDepth(text);
  if (depth > LIMITS.depth) {
    throw bad(`the JSON form is nested ${depth} levels deep; at most ${LIMITS.depth} are read`);
  }
  const numbers = new WeakMap<object, Map<string, string>>();
  let value: unknown;
  try {
    value = JSON.parse(
      text,
      function (this: object, key: string, v: unknown, ctx?: { source?: string }) {
        if (typeof v === "number" && ctx?.source !== undefined) {
          let m = numbers.get(this);
          if (!m) numbers.set(this, m = new Map());
          m.set(key, ctx.source);
        }
        return v;
      } as (this: unknown, key: string, value: unknown) => unknown,
    );
  } catch (err) {
    throw bad(`${quote(text)} is not valid JSON (${(err as Error).message})`);
  }
  return { value, numbers };
}

/** The spec's field a JSON key sets: its exact name, else a case-insensitive match (Go). */
function fieldFor(spec: Spec, key: string): string | undefined {
  if (Object.hasOwn(spec, key)) return key;
  const lower = key.toLowerCase();
  return Object.keys(spec).find((f) => f.toLowerCase() === lower);
}

const INT_LITERAL = /^-?(0|[1-9]\d*)$/;

/** The decoder of one document: its number literals, where errors point, and the warnings. */
export interface Decoder {
  json: ParsedJson;
  bad: (msg: string) => CniError;
  warnings: string[];
  /** Names the document in warnings (the annotation key). */
  where: string;
}

function decodeValue(d: Decoder, t: FieldType, v: unknown, path: string, literal?: string) {
  const wrong = (want: string) => d.bad(`"${path}" must be ${want}, got ${quote(v)}`);
  if (t === "string") {
    if (typeof v !== "string") throw wrong("a string");
    return v;
  }
  if (t === "stringList") {
    if (!Array.isArray(v)) throw wrong("a list of strings");
    v.forEach((s, i) => {
      if (typeof s !== "string") throw d.bad(`"${path}[${i}]" must be a string, got ${quote(s)}`);
    });
    return v;
  }
  if (t === "int") {
    if (typeof v !== "number" || (literal !== undefined && !INT_LITERAL.test(literal))) {
      throw d.bad(`"${path}" must be an integer, got ${literal ?? quote(v)}`);
    }
    if (!Number.isSafeInteger(v)) throw d.bad(`"${path}" is out of range: ${literal ?? v}`);
    return v;
  }
  if (t === "map") {
    if (!isPlainObject(v)) throw wrong("an object");
    return v;
  }
  if ("struct" in t) {
    if (!isPlainObject(v)) throw wrong("an object");
    return decodeStruct(d, t.struct, v, path);
  }
  if (!Array.isArray(v)) throw wrong("a list");
  return v.map((el, i) => {
    const at = `${path}[${i}]`;
    if (!isPlainObject(el)) throw d.bad(`"${at}" must be an object, got ${quote(el)}`);
    return decodeStruct(d, t.list, el, at);
  });
}

/**
 * Decodes one JSON object by `spec` into an object keyed by the spec's field names, as Go
 * decodes into a struct (a later key for the same field wins, as in Go).
 *
 * @param path the object's path in messages ("" for a top-level element)
 * @throws {CniError} from `d.bad` naming the field path and the value
 */
export function decodeStruct(d: Decoder, spec: Spec, obj: Obj, path: string): Obj {
  const out: Obj = {};
  const literals = d.json.numbers.get(obj);
  for (const [key, v] of Object.entries(obj)) {
    const field = fieldFor(spec, key);
    const at = path ? `${path}.${key}` : key;
    if (field === undefined) {
      d.warnings.push(`Annotation "${d.where}": unknown key ${quote(at)} ignored`);
      continue;
    }
    const t = spec[field];
    if (v === null) {
      // Go: null resets a list, map or pointer field and leaves a string or int as it was.
      if (t !== "string" && t !== "int") delete out[field];
      continue;
    }
    out[field] = decodeValue(d, t, v, at, literals?.get(key));
  }
  return out;
}
