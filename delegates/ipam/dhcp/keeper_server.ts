/**
 * The lease keeper as `podplex serve` runs it: a {@linkcode LeaseKeeper} behind a unix
 * socket (0600) that the `dhcp` delegate calls (`protocol.ts`), started with the daemon's
 * `--dhcp-*` flags by {@linkcode startLeaseKeeper}.
 *
 * Flags (durations as Go writes them: `500ms`, `10s`, `2m`; defaults as the reference
 * `dhcp daemon`): `--dhcp-socket PATH` (default: `dhcp.sock` beside the daemon's socket, so
 * `/run/podplex/dhcp.sock`), `--dhcp-state-dir DIR` (`/var/lib/cni/podplex/dhcp`),
 * `--dhcp-timeout` (10s), `--dhcp-resend-max` (62s), `--dhcp-resend-timeout` (208s).
 *
 * @module
 */
import { LeaseKeeper } from "./keeper.ts";
import {
  errorAnswer,
  type KeeperAnswer,
  type KeeperRequest,
  readLine,
  writeLine,
} from "./protocol.ts";

/** Where lease records live unless `--dhcp-state-dir` says. */
export const DEFAULT_STATE_DIR = "/var/lib/cni/podplex/dhcp";

/** A running keeper; `close` stops listening and renewing (the records stay). */
export interface RunningKeeper {
  socket: string;
  keeper: LeaseKeeper;
  close(): Promise<void>;
}

/** The keeper's settings after parsing its flags. */
export interface KeeperFlags {
  socket: string;
  stateDir: string;
  timeoutMs: number;
  resendMaxMs: number;
  resendTimeoutMs: number;
}

/**
 * A Go-style duration (`1h2m3.5s`, `250ms`) in milliseconds.
 *
 * @throws {Error} naming the text when it is not one
 */
export function parseDuration(text: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  let total = 0;
  let i = 0;
  while (i < text.length) {
    re.lastIndex = i;
    const m = re.exec(text);
    if (!m) break;
    total += Number(m[1]) * units[m[2]];
    i = re.lastIndex;
  }
  if (!text || i !== text.length) throw new Error(`Invalid duration "${text}" (e.g. 10s, 500ms)`);
  return total;
}

/**
 * Reads the `--dhcp-*` flags (`--flag value` or `--flag=value`).
 *
 * @param serveSocket the daemon's own socket: the keeper's default lives beside it
 * @throws {Error} naming an unknown flag or a bad value
 */
export function parseKeeperFlags(argv: string[], serveSocket: string): KeeperFlags {
  const dir = serveSocket.includes("/") ? serveSocket.slice(0, serveSocket.lastIndexOf("/")) : ".";
  const flags: KeeperFlags = {
    socket: `${dir || ""}/dhcp.sock`,
    stateDir: DEFAULT_STATE_DIR,
    timeoutMs: 10_000,
    resendMaxMs: 62_000,
    resendTimeoutMs: 208_000,
  };
  for (let i = 0; i < argv.length; i++) {
    let [name, value] = argv[i].split(/=(.*)/s, 2) as [string, string | undefined];
    if (value === undefined) value = argv[++i];
    if (value === undefined || value === "") throw new Error(`Flag "${name}" needs a value`);
    if (name === "--dhcp-socket") flags.socket = value;
    else if (name === "--dhcp-state-dir") flags.stateDir = value;
    else if (name === "--dhcp-timeout") flags.timeoutMs = parseDuration(value);
    else if (name === "--dhcp-resend-max") flags.resendMaxMs = parseDuration(value);
    else if (name === "--dhcp-resend-timeout") flags.resendTimeoutMs = parseDuration(value);
    else throw new Error(`Unknown flag "${name}"`);
  }
  return flags;
}

async function answer(keeper: LeaseKeeper, req: KeeperRequest): Promise<KeeperAnswer> {
  switch (req.op) {
    case "add": {
      const r = await keeper.acquire(req);
      return { ok: true, address: r.address, ack: r.ack };
    }
    case "del":
      await keeper.release(req.clientId);
      return { ok: true };
    case "check": {
      const r = keeper.check(req.clientId);
      return { ok: true, address: r.address, ack: r.ack };
    }
    case "gc":
      return { ok: true, released: await keeper.gc(req.netName, req.valid) };
    case "status":
      return { ok: true };
    default:
      throw new Error(`Unknown keeper call "${(req as { op?: unknown }).op}"`);
  }
}

async function handle(conn: Deno.Conn, keeper: LeaseKeeper): Promise<void> {
  try {
    let res: KeeperAnswer;
    try {
      res = await answer(keeper, JSON.parse(await readLine(conn)) as KeeperRequest);
    } catch (e) {
      res = errorAnswer(e);
    }
    await writeLine(conn, res);
  } catch {
    // The caller went away; its call still took effect, as a CNI call that timed out does.
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

/** Removes a stale socket file; refuses when a keeper answers there. */
async function prepare(path: string): Promise<void> {
  try {
    (await Deno.connect({ transport: "unix", path })).close();
    throw new Error(`Cannot listen on "${path}": another lease keeper answers there`);
  } catch (e) {
    if (e instanceof Error && e.message.startsWith("Cannot listen")) throw e;
  }
  await Deno.remove(path).catch(() => {});
  const dir = path.slice(0, path.lastIndexOf("/"));
  if (dir) await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
}

/**
 * Starts a keeper: resumes the leases of its state dir, then listens.
 *
 * @param argv the daemon's `--dhcp-*` flags
 * @param serveSocket the daemon's socket (the default keeper socket sits beside it)
 * @param log one line per event
 * @throws {Error} for a bad flag or when the socket cannot be bound
 */
export async function startLeaseKeeper(
  argv: string[],
  serveSocket: string,
  log: (line: string) => void,
): Promise<RunningKeeper> {
  const flags = parseKeeperFlags(argv, serveSocket);
  await prepare(flags.socket);
  const keeper = new LeaseKeeper({ ...flags, log });
  await keeper.resume();
  const old = Deno.umask(0o177);
  let listener: Deno.UnixListener;
  try {
    listener = Deno.listen({ transport: "unix", path: flags.socket });
  } finally {
    Deno.umask(old);
  }
  const pending = new Set<Promise<void>>();
  const serving = (async () => {
    try {
      for await (const conn of listener) {
        const p = handle(conn, keeper).finally(() => pending.delete(p));
        pending.add(p);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.BadResource)) log(`dhcp: keeper socket failed: ${e}`);
    }
  })();
  log(`dhcp: lease keeper listening on ${flags.socket}`);
  return {
    socket: flags.socket,
    keeper,
    async close() {
      try {
        listener.close();
      } catch { /* closed */ }
      await serving;
      await keeper.close();
      await Promise.allSettled(pending);
      await Deno.remove(flags.socket).catch(() => {});
    },
  };
}
