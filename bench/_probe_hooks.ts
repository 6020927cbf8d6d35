/**
 * Instrumentation for the bench's probe bundle (never part of podplex): wraps `Deno.dlopen`
 * (timing the binding and every FFI call by symbol) and the Deno file APIs (timing them by
 * the directory they touch), and keeps marks relative to the runner's fork. Must be the
 * probe's first import so that it is evaluated before podplex's modules.
 *
 * @module
 */

/** Epoch milliseconds with sub-millisecond precision. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

const forkUs = Number(Deno.env.get("PP_FORK_REALTIME_US") ?? "NaN");
/** The fork by the runner, in epoch ms (NaN when not run by the runner with `S`). */
export const forkMs = forkUs / 1000;
/** Marks in epoch ms. */
export const marks: Record<string, number> = { firstJs: now() };

/** Accumulated time and count of one kind of call. */
export interface Acc {
  ms: number;
  calls: number;
}

/** Time spent binding symbols (dlopen), per library. */
export const binding: Record<string, Acc & { symbols: number }> = {};
/** Time spent inside FFI calls, per symbol. */
export const ffiCalls: Record<string, Acc> = {};
/** Time spent in file calls, per category (state, leases, networks, other). */
export const fsCalls: Record<string, Acc> = {};

/** Start and end of every instrumented call, to find where podplex's own JS time goes. */
export const timeline: { t0: number; t1: number; what: string }[] = [];

function add(table: Record<string, Acc>, key: string, ms: number): void {
  const t1 = performance.now();
  timeline.push({ t0: t1 - ms, t1, what: key });
  const a = table[key] ??= { ms: 0, calls: 0 };
  a.ms += ms;
  a.calls++;
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

function wrapDlopen(): void {
  const dlopen = Deno.dlopen;
  // deno-lint-ignore no-explicit-any
  (Deno as any).dlopen = (path: string, symbols: Record<string, unknown>) => {
    const t = performance.now();
    const lib = dlopen(path, symbols as Deno.ForeignLibraryInterface);
    const b = binding[path] ??= { ms: 0, calls: 0, symbols: 0 };
    b.ms += performance.now() - t;
    b.calls++;
    b.symbols += Object.keys(symbols).length;
    const wrapped: Record<string, unknown> = {};
    for (const [name, fn] of Object.entries(lib.symbols)) {
      wrapped[name] = typeof fn === "function"
        ? timed(fn as Fn, (ms) => {
          add(ffiCalls, name, ms);
          timeline[timeline.length - 1].what = `ffi ${name}`;
        })
        : fn;
    }
    return { symbols: wrapped, close: () => lib.close() };
  };
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
        timeline[timeline.length - 1].what = `${name} ${String(path).split("/").pop()}`;
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
    if (--importDepth === 0) {
      const t1 = performance.now();
      lazyImports.ms += t1 - importStart;
      timeline.push({ t0: importStart, t1, what: `import ${name}` });
    }
  });
}

// deno-lint-ignore no-explicit-any
(globalThis as any).__ppImport = lazyImport;
wrapDlopen();
wrapFs();

/** The largest stretches of main() with no instrumented call running: podplex's own JS. */
function gaps(from: number, to: number): { ms: number; after: string; before: string }[] {
  const evs = [...timeline].sort((a, b) => a.t0 - b.t0);
  const out: { ms: number; after: string; before: string }[] = [];
  let t = from;
  let last = "main() start";
  for (const e of evs) {
    if (e.t0 > t) out.push({ ms: e.t0 - t, after: last, before: e.what });
    if (e.t1 > t) {
      t = e.t1;
      last = e.what;
    }
  }
  if (to > t) out.push({ ms: to - t, after: last, before: "main() end" });
  return out.sort((a, b) => b.ms - a.ms).slice(0, 6);
}

/** Writes the probe's report (JSON, one line) to `path`. */
export function report(path: string, exitCode: number): void {
  marks.exit = now();
  const origin = performance.timeOrigin;
  const jsGaps = gaps(marks.loaded - origin, marks.done - origin);
  Deno.writeTextFileSync(
    path,
    JSON.stringify({ exitCode, forkMs, marks, binding, ffiCalls, fsCalls, lazyImports, jsGaps }),
  );
}
