/**
 * Sysctls through libc open/read/write: Deno refuses /proc paths without --allow-all, and
 * /proc/sys/net shows the netns of the thread that opens it, so the file is opened, read or
 * written and closed inside one netns window.
 *
 * @module
 */
import { cstr, errno, libc } from "./_lib.ts";
import { errnoError } from "./errors.ts";
import { type NetNs, withNetns } from "./netns.ts";

const O_RDONLY = 0;
const O_WRONLY = 1;
const O_CLOEXEC = 0o2000000;

/**
 * The /proc/sys path of a key: `net/ipv4/ip_forward` or `net.ipv4.ip_forward`. Use the
 * slash form for keys with an interface name containing dots (`net/ipv4/conf/eth0.100/...`).
 */
export function sysctlPath(key: string): string {
  const rel = key.includes("/") ? key.replace(/^\/?(proc\/sys\/)?/, "") : key.replaceAll(".", "/");
  return `/proc/sys/${rel}`;
}

/** Runs `fn` inside `ns` when given, else right here. */
function maybeIn<T>(ns: NetNs | string | undefined, fn: () => T): T {
  return ns === undefined ? fn() : withNetns(ns, fn);
}

/** Opens `path` with `flags` or throws a NetlinkError naming `op`. */
function openOrThrow(path: string, flags: number, op: string): number {
  const fd = libc().open(cstr(path), flags | O_CLOEXEC, 0);
  if (fd < 0) throw errnoError(op, errno());
  return fd;
}

/**
 * Reads a sysctl, without the trailing newline.
 *
 * @param key `net/ipv4/ip_forward` or `net.ipv4.ip_forward`
 * @param ns the netns to read it in (an open NetNs, a path or an `ip netns` name)
 * @throws {NetlinkError} kind "notfound" when the key does not exist
 */
export function readSysctl(key: string, ns?: NetNs | string): string {
  const path = sysctlPath(key);
  const op = `read sysctl "${key}"`;
  return maybeIn(ns, () => {
    const c = libc();
    const fd = openOrThrow(path, O_RDONLY, op);
    try {
      const chunks: Uint8Array[] = [];
      for (;;) {
        const buf = new Uint8Array(4096);
        const n = Number(c.read(fd, buf, 4096n));
        if (n < 0) throw errnoError(op, errno());
        if (n === 0) break;
        chunks.push(buf.subarray(0, n));
      }
      const all = new Uint8Array(chunks.reduce((s, b) => s + b.length, 0));
      let off = 0;
      for (const b of chunks) all.set(b, (off += b.length) - b.length);
      return new TextDecoder().decode(all).replace(/\n$/, "");
    } finally {
      c.close(fd);
    }
  });
}

/**
 * Writes a sysctl.
 *
 * @param key `net/ipv4/ip_forward` or `net.ipv4.ip_forward`
 * @param value e.g. `"1"`
 * @param ns the netns to write it in (an open NetNs, a path or an `ip netns` name)
 * @throws {NetlinkError} kind "notfound" when the key does not exist; errno EINVAL for a
 *   value the kernel refuses
 */
export function writeSysctl(key: string, value: string, ns?: NetNs | string): void {
  const path = sysctlPath(key);
  const op = `write "${value}" to sysctl "${key}"`;
  maybeIn(ns, () => {
    const c = libc();
    const fd = openOrThrow(path, O_WRONLY, op);
    try {
      const bytes = new TextEncoder().encode(value);
      const n = Number(c.write(fd, bytes, BigInt(bytes.length)));
      if (n < 0) throw errnoError(op, errno());
    } finally {
      c.close(fd);
    }
  });
}
