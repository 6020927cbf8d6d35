/**
 * Reading a client's frame with bounded memory (issue 26). A local client, hostile or
 * broken, must not be able to make the node's network daemon hold memory it never uses:
 * 30 connections that each declared a 16 MiB frame, sent part of it and held grew the
 * daemon by ~15 MiB each (a buffer of the declared size was allocated up front), and the
 * memory stayed after they closed. Now:
 * - a frame declared larger than {@linkcode PROTOCOL.maxFrame} is refused before its body
 *   is read (the client then runs the call itself);
 * - a body is held only as its bytes arrive, in chunks, and every chunk is counted against
 *   one {@linkcode FrameBudget} shared by all connections: a frame that would take the
 *   total past the cap is refused ("not served": the client runs it per call, nothing is
 *   lost; an error code would fail the pod's call instead);
 * - the whole frame must arrive within the read deadline (slow-loris), or the connection
 *   is closed.
 *
 * @module
 */
import { PROTOCOL } from "./protocol.ts";

/**
 * Bytes of frames still arriving, held across all connections, against a cap. A quarter of
 * the cap is kept for frames of at most {@linkcode SMALL_FRAME} bytes, which is every real
 * call (a conf and env are KiBs): clients holding large frames cannot keep the node's CNI
 * calls from being served. Past the cap a frame is refused and its client runs it per call.
 */
export class FrameBudget {
  #used = 0;

  /** @param cap the most bytes of incomplete frames held at once */
  constructor(readonly cap: number) {}

  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }

  /**
   * Takes `n` bytes of a frame of `frameLen` bytes when they fit under its share of the
   * cap; says whether they did.
   */
  take(n: number, frameLen: number): boolean {
    const limit = frameLen <= SMALL_FRAME ? this.cap : this.cap - (this.cap >> 2);
    if (this.#used + n > limit) return false;
    this.#used += n;
    return true;
  }

  /** Gives back `n` bytes taken before. */
  give(n: number): void {
    this.#used -= n;
  }
}

/** The largest frame that may use the reserve of {@linkcode FrameBudget}. */
export const SMALL_FRAME = 256 << 10;

/** The default cap of {@linkcode FrameBudget}: 16 frames of the largest size at once. */
export const DEFAULT_BUFFERED_BYTES = 64 << 20;

/** How long a client has to send its whole frame (it sends it at once: a few ms). */
export const DEFAULT_READ_DEADLINE_MS = 5000;

/**
 * A body is held in chunks of at most this size, each counted whole against the budget
 * when it is allocated. 1 MiB is above glibc's mmap threshold, so a chunk's pages are
 * mapped only as bytes land in them and go back to the kernel when it is freed.
 */
const CHUNK = 1 << 20;

/**
 * Frees the chunks of frames that never completed: V8 collects unreachable buffers only
 * when something allocates, and an idle daemon does not; `podplex serve` runs with
 * `--expose-gc` (the launcher), a daemon run from the sources without. One collection
 * after a burst of abandoned frames (100 ms after the last), at most one a second: a
 * client abandoning frames in a loop costs the daemon a bounded share of its CPU.
 */
let lastGc = 0;
let gcTimer: ReturnType<typeof setTimeout> | undefined;
function collectAbandoned(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return;
  clearTimeout(gcTimer);
  const wait = Math.max(100, lastGc + 1000 - Date.now());
  gcTimer = setTimeout(() => {
    gcTimer = undefined;
    lastGc = Date.now();
    gc();
  }, wait);
}

/** A frame the daemon will not read: answered "not served", so the client runs it itself. */
export class FrameRefused extends Error {
  override name = "FrameRefused";

  /**
   * @param message what was refused
   * @param reason as the metrics count it: over the size limit, over the budget, too slow
   */
  constructor(message: string, readonly reason: "malformed" | "busy" | "slow") {
    super(message);
  }
}

async function readHeader(conn: Deno.Conn): Promise<number> {
  const head = new Uint8Array(4);
  for (let off = 0; off < 4;) {
    const got = await conn.read(head.subarray(off));
    if (got === null) throw new Error(`Connection closed after ${off} of 4 header bytes`);
    off += got;
  }
  return new DataView(head.buffer).getUint32(0);
}

/** Reads `len` body bytes into chunks counted against `budget`; gives them back at the end. */
async function readBody(conn: Deno.Conn, len: number, budget: FrameBudget): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let taken = 0;
  let got = 0;
  try {
    while (got < len) {
      const size = Math.min(CHUNK, len - got);
      if (!budget.take(size, len)) {
        throw new FrameRefused(
          `The daemon holds ${budget.used} bytes of requests still arriving (cap ${budget.cap})`,
          "busy",
        );
      }
      taken += size;
      const chunk = new Uint8Array(size);
      chunks.push(chunk);
      for (let off = 0; off < size;) {
        const n = await conn.read(chunk.subarray(off));
        if (n === null) throw new Error(`Connection closed after ${got} of ${len} bytes`);
        off += n;
        got += n;
      }
    }
    if (chunks.length === 1) return chunks[0];
    const body = new Uint8Array(len);
    let off = 0;
    for (const c of chunks) body.set(c, (off += c.length) - c.length);
    return body;
  } catch (e) {
    if (taken > CHUNK) collectAbandoned();
    throw e;
  } finally {
    budget.give(taken);
  }
}

/**
 * Reads one frame's body within `deadlineMs` of now, closing the connection when it has
 * not arrived by then.
 *
 * @throws {FrameRefused} a frame over the size limit or the budget, or not whole in time
 * @throws {Error} the connection closed before the frame was whole
 */
export async function readFrame(
  conn: Deno.Conn,
  budget: FrameBudget,
  deadlineMs: number,
): Promise<Uint8Array> {
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    try {
      conn.close();
    } catch { /* already closed */ }
  }, deadlineMs);
  try {
    const len = await readHeader(conn);
    if (len > PROTOCOL.maxFrame) {
      throw new FrameRefused(`Frame of ${len} bytes exceeds ${PROTOCOL.maxFrame}`, "malformed");
    }
    return await readBody(conn, len, budget);
  } catch (e) {
    if (late) {
      throw new FrameRefused(`No whole frame within ${deadlineMs} ms: connection closed`, "slow");
    }
    throw e;
  } finally {
    clearTimeout(timer);
  }
}
