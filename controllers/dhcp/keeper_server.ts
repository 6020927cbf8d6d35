/**
 * The dhcp controller: a {@linkcode LeaseKeeper} behind a unix socket (0600) that the `dhcp`
 * delegate calls (delegates/ipam/dhcp/protocol.ts), started by {@linkcode startDhcp} with
 * settings the daemon read from its `--dhcp-*` flags (cli/serve/dhcp_flags.ts).
 *
 * @module
 */
import {
  errorAnswer,
  type KeeperAnswer,
  type KeeperRequest,
  readLine,
  writeLine,
} from "../../delegates/ipam/dhcp/protocol.ts";
import type { Controller, ControllerContext } from "../controller.ts";
import { LeaseKeeper } from "./keeper.ts";

/** The keeper's settings (the daemon's `--dhcp-*` flags, defaults as the reference daemon). */
export interface KeeperSettings {
  /** Where it listens. */
  socket: string;
  /** The directory of lease records. */
  stateDir: string;
  /** How long to wait for each reply (ms). */
  timeoutMs: number;
  /** The longest pause between acquisition attempts (ms). */
  resendMaxMs: number;
  /** Give up acquiring after this long (ms). */
  resendTimeoutMs: number;
}

/** What the dhcp controller is started with. */
export interface DhcpContext extends ControllerContext {
  settings: KeeperSettings;
}

/** A running keeper; `close` stops listening and renewing (the records stay). */
export interface RunningKeeper extends Controller {
  socket: string;
  keeper: LeaseKeeper;
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
 * Starts a keeper: resumes the leases of its state dir, then listens. `reconcile()` gives up
 * the leases past their expiry whose timer has not fired yet.
 *
 * @throws {Error} when the socket cannot be bound, or another keeper answers there
 */
export async function startDhcp(ctx: DhcpContext): Promise<RunningKeeper> {
  const flags = ctx.settings;
  const log = ctx.log;
  await prepare(flags.socket);
  const keeper = new LeaseKeeper({ ...flags, log, clock: ctx.clock });
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
  let closed: Promise<void> | undefined;
  return {
    name: "dhcp",
    socket: flags.socket,
    keeper,
    reconcile: async () => void (closed || await keeper.expireDue()),
    close: () =>
      closed ??= (async () => {
        try {
          listener.close();
        } catch { /* closed */ }
        await serving;
        await keeper.close();
        await Promise.allSettled(pending);
        await Deno.remove(flags.socket).catch(() => {});
      })(),
  };
}
