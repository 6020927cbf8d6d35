/**
 * The one reader of the files a CNI call reads by name (network definitions, confs,
 * kubeconfigs and the credentials they name, pod manifests): the path must lead to a
 * regular file (symlinks are followed: ConfigMap and Secret mounts are symlinks), and at
 * most a size cap is read. A FIFO would block `open(2)` forever and a link to `/dev/zero`
 * would be read until memory runs out; both fail at once with code 7 naming the file.
 *
 * The type is checked before the open (an open of a FIFO blocks) and again on the open
 * descriptor, which must be the same inode: a file swapped for another in between is
 * refused. Only a FIFO swapped in during that window can still block the open; that needs
 * write access to the directory, which for these paths is root's.
 *
 * @module
 */
import { CniError, Code } from "./errors.ts";

/** The default cap: far above any real conf or NAD (Kubernetes objects stop near 1.5 MB). */
export const MAX_FILE_BYTES = 1024 * 1024;

/** Options of {@linkcode readBoundedSync}. */
export interface BoundedReadOptions {
  /** What the file is, for messages ("network definition", "kubeconfig"). */
  what: string;
  /** At most this many bytes (default {@linkcode MAX_FILE_BYTES}). */
  maxBytes?: number;
}

function kindOf(st: Deno.FileInfo): string {
  if (st.isDirectory) return "a directory";
  if (st.isFifo) return "a FIFO";
  if (st.isCharDevice) return "a character device";
  if (st.isBlockDevice) return "a block device";
  if (st.isSocket) return "a socket";
  return "not a regular file";
}

function refuse(what: string, path: string, why: string): CniError {
  return new CniError(Code.InvalidConfig, `Cannot read ${what} "${path}": ${why}`);
}

function tooBig(what: string, path: string, size: number, max: number): CniError {
  return refuse(what, path, `it is ${size} bytes or more; at most ${max} are read`);
}

/**
 * Reads at most `max + 1` bytes from an open file (one more tells "too big"). The buffer
 * starts at the file's size (one byte more, to see EOF) and grows only if the file does:
 * a resident daemon reads thousands of small files, and a buffer of the cap each time (8 MiB
 * for a state file) made its memory grow by the megabyte.
 */
function readUpTo(file: Deno.FsFile, max: number, size: number): Uint8Array {
  let buf = new Uint8Array(Math.min(max + 1, Math.max(size + 1, 4096)));
  let off = 0;
  for (;;) {
    if (off === buf.length) {
      if (buf.length > max) break;
      const next = new Uint8Array(Math.min(max + 1, buf.length * 2));
      next.set(buf);
      buf = next;
    }
    const n = file.readSync(buf.subarray(off));
    if (n === null || n === 0) break;
    off += n;
  }
  return buf.subarray(0, off);
}

/**
 * Reads a regular file of at most `maxBytes` bytes.
 *
 * @returns the bytes, or null when nothing is at `path`
 * @throws {CniError} 7 naming the file when it is not a regular file or is too large; 5 for
 *   other I/O errors (permission denied...)
 *
 * @example
 * ```ts
 * const bytes = readBoundedSync("/etc/cni/net.d/10-bridge.conf", { what: "network config" });
 * ```
 */
export function readBoundedSync(path: string, opts: BoundedReadOptions): Uint8Array | null {
  const max = opts.maxBytes ?? MAX_FILE_BYTES;
  const { what } = opts;
  let before: Deno.FileInfo;
  try {
    before = Deno.statSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw CniError.wrap(err, Code.IoFailure, `Cannot read ${what} "${path}"`);
  }
  if (!before.isFile) throw refuse(what, path, `it is ${kindOf(before)}, not a regular file`);
  if (before.size > max) throw tooBig(what, path, before.size, max);
  try {
    using file = Deno.openSync(path, { read: true });
    const st = file.statSync();
    if (!st.isFile || st.ino !== before.ino || st.dev !== before.dev) {
      throw refuse(what, path, "it was replaced while being opened");
    }
    const bytes = readUpTo(file, max, st.size);
    if (bytes.length > max) throw tooBig(what, path, bytes.length, max);
    return bytes;
  } catch (err) {
    if (err instanceof CniError) throw err;
    if (err instanceof Deno.errors.NotFound) return null;
    throw CniError.wrap(err, Code.IoFailure, `Cannot read ${what} "${path}"`);
  }
}

/** {@linkcode readBoundedSync} decoded as UTF-8 text (null when nothing is at `path`). */
export function readBoundedTextSync(path: string, opts: BoundedReadOptions): string | null {
  const bytes = readBoundedSync(path, opts);
  return bytes === null ? null : new TextDecoder().decode(bytes);
}

/**
 * {@linkcode readBoundedTextSync} for a file that must exist.
 *
 * @throws {CniError} 5 naming the file when it does not exist; as readBoundedSync otherwise
 */
export function readRequiredTextSync(path: string, opts: BoundedReadOptions): string {
  const text = readBoundedTextSync(path, opts);
  if (text === null) {
    throw new CniError(Code.IoFailure, `Cannot read ${opts.what} "${path}": no such file`);
  }
  return text;
}

/**
 * A `JSON.parse` error about a file's text without the excerpt of the text V8 quotes
 * (`Unexpected token 'r', "root:*:202"... is not valid JSON`): a file podplex was pointed at
 * by mistake, `/etc/shadow` say, must not be copied into a CNI error (kubelet logs, events).
 * The position, when V8 gives one, stays.
 *
 * @example
 * ```ts
 * jsonErrorSummary(new SyntaxError(`Unexpected token 'r', "root:x"... is not valid JSON`));
 * // "Unexpected token 'r' (not valid JSON)"
 * ```
 */
export function jsonErrorSummary(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.replace(
    /,? ?".*" is not valid JSON$|,? ?".*"\.\.\. is not valid JSON$/s,
    " (not valid JSON)",
  )
    .trim();
}
