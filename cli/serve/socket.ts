/**
 * The daemon's socket: its directory made 0700, a stale socket removed, bound 0600 from the
 * start.
 *
 * @module
 */

/** Whether something answers on a unix socket path. */
async function answers(path: string): Promise<boolean> {
  try {
    (await Deno.connect({ transport: "unix", path })).close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Prepares the socket's directory (created 0700 when missing) and removes a stale socket.
 *
 * @throws {Error} when a daemon already answers there, or the path is not a socket
 */
export async function prepareSocketPath(path: string): Promise<void> {
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
  try {
    Deno.statSync(dir);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    Deno.chmodSync(dir, 0o700); // mkdir's mode is filtered by the umask
  }
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  if (!info.isSocket) throw new Error(`Cannot listen on "${path}": it exists and is not a socket`);
  if (await answers(path)) {
    throw new Error(`Cannot listen on "${path}": another podplex serve answers there`);
  }
  Deno.removeSync(path);
}

/** Binds the socket with mode 0600 from the start (umask), so no client sees it wider. */
export function listenPrivate(path: string): Deno.UnixListener {
  const old = Deno.umask(0o177);
  try {
    return Deno.listen({ transport: "unix", path });
  } finally {
    Deno.umask(old);
  }
}
