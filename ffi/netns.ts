/**
 * Network namespaces: open, create and remove them (as `ip netns` does), and run a
 * synchronous function inside one with {@linkcode withNetns}, the only caller of setns.
 *
 * setns(2) moves only the calling thread. Synchronous FFI and synchronous Deno calls run on
 * the JS main thread; async calls run on pool threads that stay in the host netns. So a
 * netns window is synchronous: enter, open sockets or files, leave. Sockets opened inside
 * stay bound to that netns wherever they are used later.
 *
 * @module
 */
import { cstr, errno, lazyGroup, libc } from "./_lib.ts";
import { ERRNO, errnoError, NetlinkError } from "./errors.ts";

/** Only for creating, removing and inspecting netns, not for entering one. */
const manage = lazyGroup(
  "libc",
  {
    // int unshare(int flags);
    unshare: { parameters: ["i32"], result: "i32" },
    // int mount(const char *src, const char *target, const char *fstype,
    //           unsigned long flags, const void *data);
    mount: { parameters: ["buffer", "buffer", "buffer", "u64", "pointer"], result: "i32" },
    // int umount2(const char *target, int flags);
    umount2: { parameters: ["buffer", "i32"], result: "i32" },
    // int unlink(const char *path);
    unlink: { parameters: ["buffer"], result: "i32" },
    // int mkdir(const char *path, mode_t mode);
    mkdir: { parameters: ["buffer", "u32"], result: "i32" },
    // int fstat(int fd, struct stat *st);
    fstat: { parameters: ["i32", "buffer"], result: "i32" },
  } as const,
);

/** Telling a namespace file from any other file (every open of a netns asks). */
const nsKind = lazyGroup(
  "libc",
  {
    // int ioctl(int fd, unsigned long request, ...);  here with no third argument
    ioctl: { parameters: ["i32", "u64"], result: "i32" },
  } as const,
);

/** ioctl NS_GET_NSTYPE (linux/nsfs.h: _IO(0xb7, 0x3)): the CLONE_NEW* type of an ns file. */
const NS_GET_NSTYPE = 0xb703n;

const O_RDONLY = 0;
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const O_CLOEXEC = 0o2000000;
const CLONE_NEWNET = 0x40000000;
const MS_BIND = 0x1000;
const MS_REC = 0x4000;
const MS_SHARED = 0x100000;
const MNT_DETACH = 2;

/** Where `ip netns` keeps its bind mounts. */
export const NETNS_RUN_DIR = "/run/netns";
const SELF_NS = "/proc/thread-self/ns/net";

/** A netns name (`pod1`) becomes `/run/netns/pod1`; anything with a slash is a path. */
export function netnsPath(nameOrPath: string): string {
  return nameOrPath.includes("/") ? nameOrPath : `${NETNS_RUN_DIR}/${nameOrPath}`;
}

/** A network namespace held open by a file descriptor. */
export class NetNs implements Disposable {
  /** The path it was opened from. */
  readonly path: string;
  #fd: number;

  private constructor(path: string, fd: number) {
    this.path = path;
    this.#fd = fd;
  }

  /** The open file descriptor (-1 once closed). */
  get fd(): number {
    return this.#fd;
  }

  /**
   * Opens a netns file, e.g. `/run/netns/pod1`, `/proc/1234/ns/net` or a bare `ip netns` name.
   *
   * @throws {NetlinkError} kind "notfound" when the file does not exist, "notnetns" when it
   *   is not a network namespace (any other file, or another kind of namespace)
   */
  static open(path: string): NetNs {
    const full = netnsPath(path);
    const c = libc();
    const fd = c.open(cstr(full), O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) throw errnoError(`open netns "${full}"`, errno());
    // A plain file (or a /proc/x/ns/mnt) opens as well; setns would fail later with EINVAL.
    if (nsKind().ioctl(fd, NS_GET_NSTYPE) !== CLONE_NEWNET) {
      c.close(fd);
      throw new NetlinkError(
        `open netns "${full}"`,
        ERRNO.EINVAL,
        "notnetns",
        "not a network namespace",
      );
    }
    return new NetNs(full, fd);
  }

  /** The calling thread's current netns. */
  static current(): NetNs {
    return NetNs.open(SELF_NS);
  }

  /**
   * Creates a named netns as `ip netns add NAME` does: a new netns bind-mounted on
   * `/run/netns/NAME` (the directory made a shared mount so it propagates to other mount
   * namespaces). The calling thread is back in its own netns afterwards.
   *
   * @returns the new netns, open
   * @throws {NetlinkError} kind "exists" when the name is taken
   */
  static create(name: string): NetNs {
    if (!name || name.includes("/") || name === "." || name === "..") {
      throw new NetlinkError(`create netns "${name}"`, ERRNO.EINVAL, "other", "Invalid name");
    }
    ensureRunDir();
    const path = `${NETNS_RUN_DIR}/${name}`;
    const c = libc();
    const fd = c.open(cstr(path), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
    if (fd < 0) throw errnoError(`create netns "${name}"`, errno());
    c.close(fd);
    try {
      bindNewNetns(path, name);
    } catch (e) {
      manage().unlink(cstr(path));
      throw e;
    }
    return NetNs.open(path);
  }

  /**
   * Removes a named netns as `ip netns delete NAME` does (lazy unmount, then unlink). The
   * netns lives on while something still holds it. A missing name is not an error.
   *
   * @throws {NetlinkError} when the mount cannot be detached or the file removed
   */
  static remove(name: string): void {
    const path = cstr(netnsPath(name));
    const c = manage();
    if (c.umount2(path, MNT_DETACH) < 0) {
      const err = errno();
      // EINVAL: not a mount point (a half-made netns); ENOENT: already gone.
      if (err !== ERRNO.EINVAL && err !== ERRNO.ENOENT) {
        throw errnoError(`unmount netns "${name}"`, err);
      }
    }
    if (c.unlink(path) < 0) {
      const err = errno();
      if (err !== ERRNO.ENOENT) throw errnoError(`remove netns "${name}"`, err);
    }
  }

  /**
   * The netns inode number: two handles on the same netns have the same inode.
   *
   * @throws {NetlinkError} when closed
   */
  inode(): bigint {
    const st = new Uint8Array(144); // struct stat on x86_64/aarch64 is 144/128 bytes
    if (manage().fstat(this.#fd, st) < 0) throw errnoError(`stat netns "${this.path}"`, errno());
    return new DataView(st.buffer).getBigUint64(8, true); // st_ino follows st_dev
  }

  /** Closes the descriptor; calling it again does nothing. */
  close(): void {
    if (this.#fd >= 0) {
      libc().close(this.#fd);
      this.#fd = -1;
    }
  }

  /** Closes the descriptor (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Makes /run/netns exist and be a shared mount, as iproute2 does before each add. */
function ensureRunDir(): void {
  const c = manage();
  const dir = cstr(NETNS_RUN_DIR);
  const none = cstr("none");
  const empty = cstr("");
  if (c.mkdir(dir, 0o755) < 0 && errno() !== ERRNO.EEXIST) {
    throw errnoError(`create "${NETNS_RUN_DIR}"`, errno());
  }
  if (c.mount(empty, dir, none, BigInt(MS_SHARED | MS_REC), null) === 0) return;
  if (errno() !== ERRNO.EINVAL) throw errnoError(`make "${NETNS_RUN_DIR}" shared`, errno());
  // Not a mount point yet: bind it on itself, then make it shared.
  if (c.mount(dir, dir, none, BigInt(MS_BIND | MS_REC), null) < 0) {
    throw errnoError(`bind-mount "${NETNS_RUN_DIR}"`, errno());
  }
  if (c.mount(empty, dir, none, BigInt(MS_SHARED | MS_REC), null) < 0) {
    throw errnoError(`make "${NETNS_RUN_DIR}" shared`, errno());
  }
}

/** unshare(CLONE_NEWNET) on this thread, bind the new netns on `path`, go back home. */
function bindNewNetns(path: string, name: string): void {
  const c = manage();
  using home = NetNs.current();
  if (c.unshare(CLONE_NEWNET) < 0) throw errnoError(`create netns "${name}"`, errno());
  let mountErr = 0;
  if (c.mount(cstr(SELF_NS), cstr(path), cstr("none"), BigInt(MS_BIND), null) < 0) {
    mountErr = errno();
  }
  if (libc().setns(home.fd, CLONE_NEWNET) < 0) {
    throw errnoError(`return to the original netns after creating "${name}"`, errno());
  }
  if (mountErr) throw errnoError(`bind-mount netns "${name}"`, mountErr);
}

/** Whether a value looks like a Promise (a callback that awaited would leave the window). */
function isThenable(v: unknown): boolean {
  return typeof v === "object" && v !== null &&
    typeof (v as { then?: unknown }).then === "function";
}

/**
 * Runs `fn` with the calling thread inside `ns`, and always switches back, even when `fn`
 * throws. Synchronous only: async work would run on threads outside the netns.
 *
 * @param ns an open NetNs, or a netns path or `ip netns` name (opened and closed here)
 * @param fn the work to do inside; must not return a Promise
 * @returns what `fn` returns
 * @throws {NetlinkError} when the netns cannot be opened or entered
 * @throws {TypeError} when `fn` returned a Promise (the thread is back home by then)
 *
 * @example
 * ```ts
 * const nl = withNetns("/run/netns/pod1", () => Netlink.open());
 * ```
 */
export function withNetns<T>(ns: NetNs | string, fn: () => T): T {
  const target = typeof ns === "string" ? NetNs.open(ns) : ns;
  try {
    const result = inside(target, fn);
    if (isThenable(result)) {
      throw new TypeError("withNetns() needs a synchronous function: it returned a Promise");
    }
    return result;
  } finally {
    if (typeof ns === "string") target.close();
  }
}

function inside<T>(target: NetNs, fn: () => T): T {
  const c = libc();
  using home = NetNs.current();
  if (c.setns(target.fd, CLONE_NEWNET) < 0) {
    throw errnoError(`enter netns "${target.path}"`, errno());
  }
  let result: T;
  try {
    result = fn();
  } catch (e) {
    goHome(home);
    throw e;
  }
  goHome(home);
  return result;
}

function goHome(home: NetNs): void {
  if (libc().setns(home.fd, CLONE_NEWNET) < 0) {
    // Should never happen (we hold an fd on home); carrying on in the wrong netns would
    // put every later link in the container, so fail loudly.
    throw errnoError("return to the original netns", errno());
  }
}
