/**
 * Watches over etcd's JSON gateway (`POST /v3/watch`, a chunked stream of JSON messages),
 * with reconnect and resync.
 *
 * Semantics:
 * - **List then watch**: without `startRevision`, the watcher first reads the whole range and
 *   hands it to `onResync(kvs, revision)`, then watches from `revision + 1`. With
 *   `startRevision`, it starts there (no snapshot).
 * - **In order, no gap, no repeat**: `onEvents` gets events in revision order. When the
 *   stream breaks (member killed, network), the watcher reconnects, to the next member when
 *   there are several, from the revision after the last event it delivered, so nothing is
 *   lost or delivered twice.
 * - **Resync**: when etcd has compacted the revision the watcher needs, it reads the range
 *   again and calls `onResync` with the full state; the caller must then replace (not
 *   merge) what it knew.
 * - **Leader required**: the stream asks for a member with a leader (`hasleader` metadata),
 *   so a member cut off from the quorum cancels it and the watcher moves on.
 * - Handlers run one at a time; a handler's promise is awaited before the next message.
 *   Failures to connect go to `onError` and are retried with back-off (100 ms to 2 s) until
 *   {@linkcode Watcher.close}.
 *
 * @module
 */
import { b64, type KeyValue, prefixEnd, toKv } from "./_codec.ts";
import type { HttpConn } from "./_http.ts";
import type { EtcdClient } from "./client.ts";

/** What to watch. */
export interface WatchOptions {
  key: string;
  /** Every key starting with `key`. */
  prefix?: boolean;
  /** Start at this revision (no snapshot); default: snapshot, then what follows it. */
  startRevision?: number;
  /** Ask for the previous value on each event. */
  prevKv?: boolean;
}

/** One change. */
export interface WatchEvent {
  type: "PUT" | "DELETE";
  /** The key after the change (for DELETE, only key and modRevision). */
  kv: KeyValue;
  prevKv?: KeyValue;
}

/** The watcher's callbacks. */
export interface WatchHandlers {
  /** Changes, in order; `revision` is the revision of the last one. */
  onEvents(events: WatchEvent[], revision: number): void | Promise<void>;
  /** The full state of the range at `revision` (start, and after a compaction). */
  onResync?(kvs: KeyValue[], revision: number): void | Promise<void>;
  /** A failed (re)connect or a broken stream; the watcher keeps trying. */
  onError?(err: Error): void;
}

// deno-lint-ignore no-explicit-any
type J = any;

/** A running watch; see the module doc. */
export class Watcher {
  readonly #client: EtcdClient;
  readonly #opts: WatchOptions;
  readonly #h: WatchHandlers;
  #next = 0;
  #conn: HttpConn | undefined;
  #closed = false;
  #loop: Promise<void> | undefined;
  #ready!: () => void;
  /**
   * Resolves when the first stream is established (the snapshot, if any, delivered). With a
   * `startRevision` that was compacted, etcd confirms the stream and then cancels it: the
   * resync follows `ready`.
   */
  readonly ready: Promise<void>;

  /** Starts watching at once. */
  constructor(client: EtcdClient, opts: WatchOptions, handlers: WatchHandlers) {
    this.#client = client;
    this.#opts = opts;
    this.#h = handlers;
    this.ready = new Promise((r) => this.#ready = r);
    this.#next = opts.startRevision ?? 0;
    this.#loop = this.#run();
  }

  /** The next revision the watcher expects. */
  get nextRevision(): number {
    return this.#next;
  }

  /** Stops watching and waits for the loop to end. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#conn?.close();
    this.#ready();
    await this.#loop;
  }

  async #run(): Promise<void> {
    let backoff = 100;
    while (!this.#closed) {
      try {
        if (this.#next === 0) await this.#resync();
        if (this.#closed) break;
        const resync = await this.#stream(() => backoff = 100);
        if (resync) this.#next = 0;
      } catch (err) {
        if (this.#closed) break;
        this.#h.onError?.(err as Error);
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 2000);
      }
    }
  }

  async #resync(): Promise<void> {
    const r = await this.#client.range(this.#opts.key, { prefix: this.#opts.prefix });
    await this.#h.onResync?.(r.kvs, r.revision);
    this.#next = r.revision + 1;
  }

  /** One stream until it breaks. @returns true when history was compacted (resync) */
  async #stream(onCreated: () => void): Promise<boolean> {
    const create: J = {
      key: b64(this.#opts.key),
      start_revision: String(this.#next),
      prev_kv: this.#opts.prevKv ?? false,
    };
    if (this.#opts.prefix) create.range_end = prefixEnd(this.#opts.key);
    const { conn } = await this.#client.openStream("/v3/watch", { create_request: create }, [
      "Grpc-Metadata-hasleader: true",
    ]);
    this.#conn = conn;
    if (this.#closed) conn.close();
    try {
      let buf = "";
      const dec = new TextDecoder();
      for await (const chunk of conn.chunks()) {
        buf += dec.decode(chunk, { stream: true });
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line && await this.#message(JSON.parse(line), onCreated)) return true;
        }
        // The gateway may send a message without a trailing newline.
        if (buf.trim().endsWith("}")) {
          try {
            const j = JSON.parse(buf);
            buf = "";
            if (await this.#message(j, onCreated)) return true;
          } catch { /* incomplete: wait for more */ }
        }
      }
      throw new Error("The etcd watch stream ended");
    } finally {
      conn.close();
      this.#conn = undefined;
    }
  }

  /** Handles one stream message. @returns true when a resync is needed */
  async #message(j: J, onCreated: () => void): Promise<boolean> {
    if (j.error) {
      throw new Error(`etcd watch failed: ${j.error.message ?? JSON.stringify(j.error)}`);
    }
    const r = j.result ?? {};
    if (Number(r.compact_revision ?? 0) > 0) return true;
    if (r.created) {
      onCreated();
      this.#ready();
    }
    if (r.canceled) throw new Error(`etcd canceled the watch: ${r.cancel_reason ?? "no reason"}`);
    const events: WatchEvent[] = (r.events ?? []).map((e: J) => ({
      type: e.type === "DELETE" ? "DELETE" : "PUT",
      kv: toKv(e.kv),
      ...(e.prev_kv ? { prevKv: toKv(e.prev_kv) } : {}),
    })).filter((e: WatchEvent) => e.kv.modRevision >= this.#next);
    if (events.length > 0) {
      const last = events[events.length - 1].kv.modRevision;
      await this.#h.onEvents(events, last);
      this.#next = last + 1;
    }
    return false;
  }
}
