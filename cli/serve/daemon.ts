/**
 * One connection to `podplex serve`: read the client's frame, answer a probe, refuse what
 * must run per call, run a call through the scheduler with its deadline, write the reply.
 * The client's going away (EOF on the socket while the call waits or runs) cancels it.
 *
 * @module
 */
import { type CallContext, type FallbackReason, notServed, refusal, runCall } from "./call.ts";
import { admitAndRun, type CallScheduler } from "./gate.ts";
import { createTrace } from "../../conf/trace.ts";
import { type FrameBudget, FrameRefused, readFrame } from "./frames.ts";
import {
  type CallFrame,
  decodeClientFrame,
  encodeReply,
  type ProbeInfo,
  PROTOCOL,
  type Reply,
} from "./protocol.ts";

/** What one served call was, for the log and the metrics. */
export interface CallRecord {
  verb: string;
  containerId: string;
  ifname: string;
  /** The reply's exit status, or PROTOCOL.notServed. */
  status: number;
  /** The CNI error code of a failed call (0 on success). */
  code: number;
  /** Why it was not served (NOT_SERVED only): the sentence, and its kind. */
  reason?: string;
  fallback?: FallbackReason;
  /** Time from arrival to reply (s). */
  seconds: number;
  /** The call's timing marks as `PODPLEX_TRACE` prints them (with `--trace`). */
  trace?: string;
  /** Set on the record of a run that ended after its client was answered (11). */
  late?: boolean;
  /** The call itself (stdin, env), for observers that look deeper. */
  call: CallFrame;
  reply: Reply;
}

/** What the daemon holds across calls. */
export interface Daemon extends CallContext {
  scheduler: CallScheduler;
  /** A call's deadline from its arrival (ms). */
  deadlineMs: number;
  /** The bytes of frames still arriving, across all connections (`frames.ts`). */
  frames: FrameBudget;
  /** How long a client has to send its whole frame (ms). */
  readDeadlineMs: number;
  draining: boolean;
  /** Trace every call (`--trace`): its marks go to `observe` as {@linkcode CallRecord.trace}. */
  trace?: boolean;
  /** Told of every call that was answered. */
  observe(record: CallRecord): void;
  /** Told of a frame answered "not served" before it was a call (protocol 1, malformed). */
  observeFrame?(reason: FallbackReason, why: string): void;
}

/** The reply to a readiness probe: ready (0) only for the daemon's own build. */
export function probeReply(d: Daemon, build: string): Reply {
  const info: ProbeInfo = {
    protocol: PROTOCOL.version,
    build: d.build,
    ready: d.ready(),
    draining: d.draining,
    inFlight: d.scheduler.running,
    queued: d.scheduler.waiting,
  };
  const status = info.ready && build === d.build ? 0 : PROTOCOL.notServed;
  return { status, stdout: JSON.stringify(info), stderr: "" };
}

/** The CNI error code in a reply's stdout (0 for success or no error JSON). */
export function replyCode(reply: Reply): number {
  if (reply.status === 0 || reply.status === PROTOCOL.notServed) return 0;
  try {
    const code = JSON.parse(reply.stdout).code;
    return typeof code === "number" ? code : 999;
  } catch {
    return 999;
  }
}

/** Serves a call: refused ones at once, the others through the scheduler. */
export async function serveCall(
  d: Daemon,
  call: CallFrame,
  clientGone?: AbortSignal,
): Promise<Reply> {
  const t0 = performance.now();
  const record = (reply: Reply, extra: Partial<CallRecord> = {}) =>
    d.observe({
      verb: call.env.CNI_COMMAND ?? "-",
      containerId: call.env.CNI_CONTAINERID ?? "-",
      ifname: call.env.CNI_IFNAME ?? "-",
      status: reply.status,
      code: replyCode(reply),
      seconds: (performance.now() - t0) / 1000,
      call,
      reply,
      ...extra,
    });
  const no = refusal(call, d);
  if (no !== undefined) {
    const reply = notServed(no.why);
    record(reply, { reason: no.why, fallback: no.reason });
    return reply;
  }
  let answered = false;
  let marks: string | undefined;
  const reply = await admitAndRun(call, d.scheduler, async (signal) => {
    const trace = d.trace ? createTrace() : undefined;
    const r = await runCall(call, d.root, signal, trace);
    trace?.flush((line) => marks = line.trim());
    // Its client was told 11 at the deadline: what the run did in the end is still told.
    if (answered) record(r, { late: true });
    return r;
  }, { clientGone, deadlineMs: d.deadlineMs });
  answered = true;
  record(reply, marks ? { trace: marks } : {});
  return reply;
}

async function writeFull(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

/**
 * A signal that aborts when the client closes its end: after its request a client only
 * reads, so a read that ends means it is gone (timed out, killed).
 */
function watchClient(conn: Deno.Conn): AbortController {
  const gone = new AbortController();
  conn.read(new Uint8Array(1)).then(
    (n) => n === null && gone.abort("the client went away"),
    () => gone.abort("the client went away"),
  );
  return gone;
}

/** Handles one connection to its end. */
export async function handle(conn: Deno.Conn, d: Daemon): Promise<void> {
  try {
    let reply: Uint8Array;
    try {
      const frame = decodeClientFrame(await readFrame(conn, d.frames, d.readDeadlineMs));
      if (frame.kind === "legacy") {
        const why = `protocol 1 is not served by build "${d.build}"`;
        d.observeFrame?.("protocol", why);
        reply = encodeReply(notServed(why), true);
      } else if (frame.kind === "probe") reply = encodeReply(probeReply(d, frame.build));
      else reply = encodeReply(await serveCall(d, frame, watchClient(conn).signal));
    } catch (e) {
      // A malformed frame was never run: the client may run podplex itself.
      const why = e instanceof Error ? e.message : String(e);
      d.observeFrame?.(e instanceof FrameRefused ? e.reason : "malformed", why);
      reply = encodeReply(notServed(why));
    }
    await writeFull(conn, reply);
  } catch {
    // The client went away; it reports "did not answer" itself.
  } finally {
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}
