/**
 * The only place that calls `Deno.dlopen`. Each C library is opened on first use, and each
 * operation group binds only its own symbols when first needed: binding costs ~0.27 ms per
 * symbol and a CNI invocation's startup is the budget.
 *
 * @module
 */

/** Where the three C libraries live (sonames by default, resolved by the dynamic loader). */
const paths = {
  nl: "libnl-3.so.200",
  nlRoute: "libnl-route-3.so.200",
  libc: "libc.so.6",
  nft: "libnftables.so.1",
};

/** Library names a symbol group can be bound from. */
export type LibName = keyof typeof paths;

let used = false;

/**
 * The libraries the node artifact ships beside its bundle (`deno task artifact`): hosts such
 * as Flatcar or Talos have no libnl. libc is always the host's.
 */
const SHIPPED = new Set<LibName>(["nl", "nlRoute"]);

/** The path each library is opened by, decided once (see {@linkcode libraryPath}). */
const chosen: Partial<Record<LibName, string>> = {};

/** Keeps the shipped libnl-3 loaded, so libnl-route-3's DT_NEEDED entry resolves to it. */
let shippedNl: Deno.DynamicLibrary<Record<string, never>> | undefined;

/**
 * The copy beside this module (in the artifact: beside the bundle's chunks), else the
 * soname or the path set by {@linkcode setLibraryPaths}. glibc matches a DT_NEEDED soname
 * against objects already loaded, so opening the shipped libnl-3 before libnl-route-3 makes
 * the latter use it instead of looking for the system's.
 */
function libraryPath(lib: LibName): string {
  const known = chosen[lib];
  if (known) return known;
  let path = paths[lib];
  const copy = SHIPPED.has(lib) && !path.includes("/") ? shippedCopy(path) : undefined;
  if (copy) {
    if (lib === "nlRoute") shippedNl ??= Deno.dlopen(libraryPath("nl"), {});
    path = copy;
  }
  return (chosen[lib] = path);
}

function shippedCopy(soname: string): string | undefined {
  const url = new URL(`./${soname}`, import.meta.url);
  if (url.protocol !== "file:") return undefined;
  try {
    return Deno.statSync(url).isFile ? decodeURIComponent(url.pathname) : undefined;
  } catch {
    return undefined; // a checkout (ffi/ has no copies): the system's, by soname
  }
}

/** What has been bound so far: for the benchmark and for startup budgeting. */
const stats = { groups: 0, symbols: 0, ms: 0 };

/** How many symbol groups and symbols are bound, and the milliseconds binding took. */
export function bindStats(): { groups: number; symbols: number; ms: number } {
  return { ...stats };
}

/**
 * Overrides where the C libraries are loaded from. Call before the first netlink, netns or
 * sysctl operation; later calls would leave already bound groups on the old libraries.
 *
 * @param p a path (or soname) per library; missing keys keep their default (a path, with a
 *   "/", is used as given; a soname is looked for beside the bundle first)
 * @throws {Error} when a library has already been loaded
 */
export function setLibraryPaths(p: { nl?: string; nlRoute?: string; libc?: string }): void {
  if (used) throw new Error("Cannot change library paths: a library is already loaded");
  if (p.nl) paths.nl = p.nl;
  if (p.nlRoute) paths.nlRoute = p.nlRoute;
  if (p.libc) paths.libc = p.libc;
}

/**
 * Binds a symbol table without Deno's per-symbol JIT: `Deno.dlopen` compiles a fast-call
 * trampoline (Cranelift) for every function symbol, ~0.25 ms each, 3.7 ms of a 3-network ADD
 * and 4.7 ms of its DEL, for a process that then makes ~300 calls. Asking for the symbols as
 * pointer statics (their addresses, no compilation) and calling them through
 * `Deno.UnsafeFnPointer` costs a few microseconds per call instead. Still synchronous, on the
 * calling thread, which netns windows need; except a symbol declared `nonblocking: true`,
 * which UnsafeFnPointer runs on a worker thread (in the host netns) and which returns a
 * Promise: only for calls on an fd already bound to its netns, never inside a netns window.
 */
function bindByAddress<S extends Deno.ForeignLibraryInterface>(
  lib: LibName,
  symbols: S,
): Deno.DynamicLibrary<S>["symbols"] {
  const names = Object.keys(symbols);
  const statics = Object.fromEntries(names.map((k) => [k, { type: "pointer" as const }]));
  const path = libraryPath(lib);
  const addrs = Deno.dlopen(path, statics).symbols as Record<string, Deno.PointerValue>;
  const out: Record<string, unknown> = {};
  for (const k of names) {
    const addr = addrs[k];
    if (addr === null) throw new Error(`Cannot bind "${k}" of ${path}: a null address`);
    const def = symbols[k] as Deno.ForeignFunction;
    const fn = new Deno.UnsafeFnPointer(addr as Deno.PointerObject<typeof def>, def);
    out[k] = (...args: Parameters<typeof fn.call>) => fn.call(...args);
  }
  return out as Deno.DynamicLibrary<S>["symbols"];
}

/**
 * Returns a lazily bound symbol group: the library is dlopen'ed (the loader keeps one copy
 * per process) and the symbols bound on the first call of the returned getter only.
 *
 * @param lib which library the symbols come from
 * @param symbols an `as const` Deno FFI symbol table
 */
export function lazyGroup<S extends Deno.ForeignLibraryInterface>(
  lib: LibName,
  symbols: S,
): () => Deno.DynamicLibrary<S>["symbols"] {
  let bound: Deno.DynamicLibrary<S>["symbols"] | undefined;
  return () => {
    if (!bound) {
      used = true;
      const t0 = performance.now();
      bound = bindByAddress(lib, symbols);
      stats.ms += performance.now() - t0;
      stats.groups++;
      stats.symbols += Object.keys(symbols).length;
    }
    return bound;
  };
}

/**
 * The libc calls of the common path, shared by netns windows, sysctls and netlink sockets
 * so that each symbol is bound once.
 */
export const libc = lazyGroup(
  "libc",
  {
    // int open(const char *path, int flags, mode_t mode);
    open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
    // int close(int fd);
    close: { parameters: ["i32"], result: "i32" },
    // ssize_t read(int fd, void *buf, size_t count);
    read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
    // ssize_t write(int fd, const void *buf, size_t count);
    write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
    // int setns(int fd, int nstype);
    setns: { parameters: ["i32", "i32"], result: "i32" },
    // void free(void *p);
    free: { parameters: ["pointer"], result: "void" },
    // int setsockopt(int fd, int level, int name, const void *val, socklen_t len);
    setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  } as const,
);

/** The symbols every libc caller needs to read errno (Deno has no errno accessor). */
const errnoGroup = lazyGroup(
  "libc",
  {
    // int *__errno_location(void);
    __errno_location: { parameters: [], result: "pointer" },
    // char *strerror(int errnum);
    strerror: { parameters: ["i32"], result: "pointer" },
  } as const,
);

/** The calling thread's errno; read it right after the failing libc call. */
export function errno(): number {
  const p = errnoGroup().__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
}

/** libc's text for an errno value (e.g. "No such file or directory"). */
export function strerror(code: number): string {
  const p = errnoGroup().strerror(code);
  return p ? Deno.UnsafePointerView.getCString(p) : `errno ${code}`;
}

const encoder = new TextEncoder();

/** A NUL-terminated copy of `s` for a `const char *` parameter. */
export function cstr(s: string): Uint8Array<ArrayBuffer> {
  const bytes = encoder.encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}
