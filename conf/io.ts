/**
 * Whole writes to a file or a standard stream: a `writeSync` may write less than it was
 * given (a pipe that is full, a signal), so every write of podplex goes through here.
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * Writes all of `data` to a sync writer, retrying short writes.
 *
 * @returns the number of bytes written (all of them)
 * @example
 * ```ts
 * writeAllSync(Deno.stderr, "podplex: done\n");
 * ```
 */
export function writeAllSync(
  file: { writeSync(p: Uint8Array): number },
  data: Uint8Array | string,
): number {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  let off = 0;
  while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
  return off;
}

/** What the temp files of {@linkcode writeFileAtomicSync} carry after the target's name. */
export const TEMP_MARK = ".tmp-";

/** Options of {@linkcode writeFileAtomicSync}. */
export interface AtomicWriteOptions {
  /** The file's mode, enforced whatever the umask (default 0600). */
  mode?: number;
  /** Make the directory (recursively) with this mode when it is missing. */
  dirMode?: number;
}

/** Best effort fsync of a directory, so that a rename survives a power loss. */
function syncDir(dir: string): void {
  try {
    using f = Deno.openSync(dir, { read: true });
    f.syncSync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  }
}

/**
 * Writes `data` to `path` so that a reader (or a crash) sees the old file or the new one,
 * never half of either: a temp file beside it (`.<name>.tmp-<random>`, created exclusively),
 * fsync, the mode set, rename, fsync of the directory. A failed write removes its temp file;
 * a crash may leave one, which names the target so its owner can clean it up.
 *
 * @throws {Error} the failing file system call's error
 * @example
 * ```ts
 * writeFileAtomicSync("/var/lib/cni/podplex/c1@eth0.json", JSON.stringify(state));
 * ```
 */
export function writeFileAtomicSync(
  path: string,
  data: Uint8Array | string,
  opts: AtomicWriteOptions = {},
): void {
  const mode = opts.mode ?? 0o600;
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  if (opts.dirMode !== undefined) Deno.mkdirSync(dir, { recursive: true, mode: opts.dirMode });
  const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(16);
  const tmp = `${dir}/.${path.slice(dir.length + 1)}${TEMP_MARK}${rand}`;
  try {
    const file = Deno.openSync(tmp, { write: true, createNew: true, mode });
    try {
      writeAllSync(file, data);
      file.syncSync();
    } finally {
      file.close();
    }
    Deno.chmodSync(tmp, mode); // the umask filters the create mode
    Deno.renameSync(tmp, path);
  } catch (err) {
    try {
      Deno.removeSync(tmp);
    } catch { /* the first error is the one to report */ }
    throw err;
  }
  syncDir(dir);
}

/** {@linkcode writeFileAtomicSync} for callers that await (a rejection instead of a throw). */
export function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  try {
    writeFileAtomicSync(path, data, opts);
    return Promise.resolve();
  } catch (err) {
    return Promise.reject(err);
  }
}
