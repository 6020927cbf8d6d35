/**
 * Instrumentation for the bench's probe bundle (never part of podplex): times what
 * podplex's own trace marks cannot split out of a phase: the C calls by symbol (`Deno.dlopen`
 * and `Deno.UnsafeFnPointer` wrapped: ffi/_lib.ts binds symbols by address and calls them
 * through function pointers), the binding itself, the Deno file APIs by the directory they
 * touch, and the lazy chunk imports. Must be the probe's first import so that it is evaluated
 * before podplex's modules.
 *
 * @module
 */

/** Epoch milliseconds with sub-millisecond precision. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** Marks in epoch ms. */
export const marks: Record<string, number> = { firstJs: now() };

/** Accumulated time and count of one kind of call. */
export interface Acc {
  ms: number;
  calls: number;
}

/**
 * Time spent binding, per library (`dlopen` of the symbols' addresses) and under
 * "UnsafeFnPointer" (making the callable pointers); `calls` counts symbols.
 */
export const binding: Record<string, Acc> = {};
/** Time spent inside C calls, per symbol. */
export const ffiCalls: Record<string, Acc> = {};
/** Time spent in file calls, per category (state, leases, networks, other). */
export const fsCalls: Record<string, Acc> = {};

function add(table: Record<string, Acc>, key: string, ms: number, calls = 1): void {
  const a = table[key] ??= { ms: 0, calls: 0 };
  a.ms += ms;
  a.calls += calls;
}

// deno-lint-ignore no-explicit-any
type Fn = (...args: any[]) => any;

function timed(fn: Fn, onDone: (ms: number) => void): Fn {
  return function (this: unknown, ...args: unknown[]) {
    const t = performance.now();
    const r = fn.apply(this, args);
    if (r instanceof Promise) return r.finally(() => onDone(performance.now() - t));
    onDone(performance.now() - t);
    return r;
  };
}

const dirs: [string, string][] = [
  ["state", Deno.env.get("PP_PROBE_STATE") ?? "\0"],
  ["leases", Deno.env.get("PP_PROBE_LEASES") ?? "\0"],
  ["networks", Deno.env.get("PP_PROBE_NETWORKS") ?? "\0"],
];

function category(path: unknown): string {
  const p = String(path instanceof URL ? path.pathname : path);
  return dirs.find(([, d]) => p.startsWith(d))?.[0] ?? "other";
}

/** Symbol names by address, from the pointer statics dlopen returned. */
const symbolAt = new Map<string, string>();

function wrapDlopen(): void {
  const dlopen = Deno.dlopen;
  // deno-lint-ignore no-explicit-any
  (Deno as any).dlopen = (path: string, symbols: Record<string, unknown>) => {
    const t = performance.now();
    const lib = dlopen(path, symbols as Deno.ForeignLibraryInterface);
    add(binding, path, performance.now() - t, Object.keys(symbols).length);
    const wrapped: Record<string, unknown> = {};
    for (const [name, v] of Object.entries(lib.symbols)) {
      if (typeof v === "function") {
        wrapped[name] = timed(v as Fn, (ms) => add(ffiCalls, name, ms));
      } else {
        if (v !== null && typeof v === "object") {
          symbolAt.set(String(Deno.UnsafePointer.value(v as Deno.PointerObject)), name);
        }
        wrapped[name] = v;
      }
    }
    return { symbols: wrapped, close: () => lib.close() };
  };
}

function wrapFnPointer(): void {
  const Original = Deno.UnsafeFnPointer;
  class TimedFnPointer<D extends Deno.ForeignFunction> extends Original<D> {
    constructor(pointer: Deno.PointerObject<NoInfer<D>>, definition: D) {
      const t = performance.now();
      super(pointer, definition);
      const name = symbolAt.get(String(Deno.UnsafePointer.value(pointer))) ?? "(unnamed)";
      const call = this.call.bind(this) as Fn;
      this.call = timed(call, (ms) => add(ffiCalls, name, ms)) as typeof this.call;
      add(binding, "UnsafeFnPointer", performance.now() - t);
    }
  }
  // deno-lint-ignore no-explicit-any
  (Deno as any).UnsafeFnPointer = TimedFnPointer;
}

const FS_PATH_FNS = [
  "open",
  "openSync",
  "readFile",
  "readFileSync",
  "readTextFile",
  "readTextFileSync",
  "writeFile",
  "writeFileSync",
  "writeTextFile",
  "writeTextFileSync",
  "rename",
  "renameSync",
  "mkdir",
  "mkdirSync",
  "remove",
  "removeSync",
  "stat",
  "statSync",
  "lstat",
  "lstatSync",
  "readDir",
  "readDirSync",
  "chmod",
  "chmodSync",
  "realPath",
  "realPathSync",
] as const;
const FILE_METHODS = [
  "read",
  "readSync",
  "write",
  "writeSync",
  "sync",
  "syncSync",
  "syncData",
  "syncDataSync",
  "close",
  "lock",
  "lockSync",
  "unlock",
  "unlockSync",
  "truncate",
  "truncateSync",
] as const;
const fileCategory = new WeakMap<object, string>();

function wrapFs(): void {
  // deno-lint-ignore no-explicit-any
  const D = Deno as any;
  for (const name of FS_PATH_FNS) {
    const fn = D[name] as Fn | undefined;
    if (typeof fn !== "function") continue;
    D[name] = function (path: unknown, ...rest: unknown[]) {
      const cat = category(path);
      const t = performance.now();
      const r = fn(path, ...rest);
      const done = (v: unknown) => {
        add(fsCalls, cat, performance.now() - t);
        if (v && typeof v === "object" && name.startsWith("open")) fileCategory.set(v, cat);
        return v;
      };
      return r instanceof Promise ? r.then(done) : done(r);
    };
  }
  const proto = Deno.FsFile.prototype as unknown as Record<string, Fn>;
  for (const name of FILE_METHODS) {
    const fn = proto[name];
    if (typeof fn !== "function") continue;
    proto[name] = function (this: object, ...args: unknown[]) {
      const cat = fileCategory.get(this) ?? "other";
      return timed(fn, (ms) => add(fsCalls, cat, ms)).apply(this, args);
    };
  }
}

/** Time spent loading lazily imported chunks (union of overlapping imports). */
export const lazyImports: Acc & { modules: string[] } = { ms: 0, calls: 0, modules: [] };
let importDepth = 0;
let importStart = 0;
const here = new URL(".", import.meta.url);

/**
 * The probe's bundle has its `import("./x.js")` rewritten to `__ppImport("x.js")` (see
 * `_breakdown.ts`) so that loading lazy chunks is timed apart from podplex's own JS.
 */
function lazyImport(name: string): Promise<unknown> {
  if (importDepth++ === 0) importStart = performance.now();
  lazyImports.calls++;
  lazyImports.modules.push(name);
  return import(new URL(name, here).href).finally(() => {
    if (--importDepth === 0) lazyImports.ms += performance.now() - importStart;
  });
}

// deno-lint-ignore no-explicit-any
(globalThis as any).__ppImport = lazyImport;
wrapDlopen();
wrapFnPointer();
wrapFs();

/** Writes the probe's report (JSON, one line) to `path`. */
export function report(path: string, exitCode: number): void {
  marks.exit = now();
  Deno.writeTextFileSync(
    path,
    JSON.stringify({ exitCode, marks, binding, ffiCalls, fsCalls, lazyImports }),
  );
}
