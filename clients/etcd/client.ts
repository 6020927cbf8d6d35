/**
 * A small etcd v3 client over etcd's JSON gateway (`/v3/kv/*`, `/v3/lease/*`, `/v3/watch`),
 * shared by the cluster IPAM and the cluster network.
 *
 * ## Why the JSON gateway on `Deno.connect`
 * Measured on this machine (2 cores shared with other work, Deno 2.9.6, etcd 3.4.23 on
 * loopback; hyperfine, 80 runs each, medians; process start + one range request + exit):
 *
 * | client | median | over an empty `deno run` |
 * |---|---|---|
 * | empty script | 24.7 ms | 0 |
 * | 6 lines of HTTP/1.1 on `Deno.connect` (the floor) | 28.3 ms | +3.6 ms |
 * | this module, bundled (`get` through the full client) | 34.7 ms | +10.0 ms |
 * | the gateway through `fetch` | 41.0 ms | +16.3 ms |
 * | npm `etcd3` 1.1.2 (gRPC), unbundled | 282.7 ms | +258 ms |
 *
 * `etcd3` cannot even be bundled (it loads its `.proto` files from `__dirname` at run time).
 * Every CNI call is a new process, so the first request's cost is the budget: this module
 * writes HTTP/1.1 itself, bounds requests with `AbortSignal.timeout` (the first `setTimeout`
 * of a Deno 2.9 process costs ~7 ms) and parses URLs with a regex.
 *
 * ## Semantics callers rely on
 * - **Failover**: `endpoints` are tried in turn, starting at the last one that answered. A
 *   connection failure, a timeout, or an answer meaning "not now" (gRPC UNAVAILABLE or
 *   DEADLINE_EXCEEDED, "no leader", "leader changed") moves to the next member; after a full
 *   round the client backs off (50 ms doubling to 400 ms) until `totalTimeoutMs` runs out.
 * - **Bounded**: every call ends within `totalTimeoutMs` (default 5 s). Then it throws
 *   {@linkcode EtcdUnavailableError}; {@linkcode cniError} maps it to CNI code 11 (try again
 *   later). Other etcd errors (a bad request, a lease not found) throw {@linkcode EtcdError}
 *   at once.
 * - **Retried writes may have run**: a request that timed out or lost its connection may
 *   still commit, and is retried. Write transactions that are safe to repeat (create only if
 *   absent, and recognise your own value when the compare fails) or check afterwards.
 * - **Leases**: ids are decimal strings (int64). {@linkcode EtcdClient.keepAlive} refreshes
 *   every TTL/3 and reports a lease that expired.
 * - **Watches**: see `watch.ts` (list then watch, reconnect from the next revision, resync
 *   when history was compacted).
 *
 * @example
 * ```ts
 * const etcd = new EtcdClient({ endpoints: ["http://127.0.0.1:2379"] });
 * try {
 *   const r = await etcd.txn({
 *     compare: [{ key: "/a", target: "CREATE", result: "EQUAL", createRevision: 0 }],
 *     success: [{ put: { key: "/a", value: "mine" } }],
 *   });
 *   if (!r.succeeded) console.log("taken");
 * } finally {
 *   etcd.close();
 * }
 * ```
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import {
  type Compare,
  compareJson,
  type KeyValue,
  type Op,
  opJson,
  type OpResponse,
  opResponse,
  rangeBody,
  toKv,
} from "./_codec.ts";
import {
  type Endpoint,
  HttpConn,
  parseEndpoint,
  text,
  type TlsFiles,
  TransportError,
} from "./_http.ts";

export type { Compare, CompareResult, KeyValue, Op, OpResponse } from "./_codec.ts";
export type { TlsFiles } from "./_http.ts";

/** Options of {@linkcode EtcdClient}. */
export interface EtcdOptions {
  /** Client URLs of the members (`http://host:port`, `https://...`, or `host:port`). */
  endpoints: string[];
  /** CA, client certificate and key (PEM texts) for `https` endpoints. */
  tls?: TlsFiles;
  /** Limit of connecting to one member (default 1000 ms). */
  dialTimeoutMs?: number;
  /** Limit of one request to one member (default 2000 ms). */
  requestTimeoutMs?: number;
  /** Limit of a whole call, failover and back-off included (default 5000 ms). */
  totalTimeoutMs?: number;
}

/** An error etcd answered (gRPC `code`, etcd's message). */
export class EtcdError extends Error {
  /** The gRPC status code (0 when the error is not from etcd). */
  readonly grpcCode: number;
  /**
   * @param message etcd's message, with the request named
   * @param grpcCode the gRPC code of etcd's answer
   */
  constructor(message: string, grpcCode = 0, options?: ErrorOptions) {
    super(message, options);
    this.name = "EtcdError";
    this.grpcCode = grpcCode;
  }
}

/** No member answered within the call's time: the caller should try again later (CNI 11). */
export class EtcdUnavailableError extends EtcdError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, 14, options);
    this.name = "EtcdUnavailableError";
  }
}

/** Options of {@linkcode EtcdClient.range}. */
export interface RangeOptions {
  /** Every key starting with `key`. */
  prefix?: boolean;
  /** Every key in [key, end) (ignored with `prefix`). */
  end?: string;
  /** At most this many keys. */
  limit?: number;
  /** Keys and revisions only. */
  keysOnly?: boolean;
  /** Read at this revision (0: the latest). */
  revision?: number;
}

/** A range's answer. */
export interface RangeResult {
  kvs: KeyValue[];
  /** Keys in the range (may exceed `kvs.length` with a limit). */
  count: number;
  /** The store's revision when read. */
  revision: number;
}

/** A transaction: `success` runs when every `compare` holds, else `failure`. */
export interface Txn {
  compare: Compare[];
  success: Op[];
  failure?: Op[];
}

/** A transaction's answer. */
export interface TxnResult {
  succeeded: boolean;
  revision: number;
  responses: OpResponse[];
}

/** A lease kept alive in the background; see {@linkcode EtcdClient.keepAlive}. */
export interface KeepAlive {
  readonly id: string;
  /** Stops refreshing (the lease then expires after its TTL unless revoked). */
  stop(): void;
}

/**
 * The key-value part of {@linkcode EtcdClient}: what a store, a journal replay or a reconcile
 * needs. A controller's unit test hands in an in-memory fake of it.
 */
export type EtcdKv = Pick<EtcdClient, "get" | "range" | "put" | "delete" | "txn">;

/** The lease part of {@linkcode EtcdClient}: what a keeper of a lease needs. */
export type EtcdLeases = Pick<EtcdClient, "leaseGrant" | "keepAlive">;

// deno-lint-ignore no-explicit-any
type J = any;

const MAX_IDLE = 8;

/** The etcd v3 client; see the module doc for its semantics. */
export class EtcdClient {
  readonly #eps: Endpoint[];
  readonly #tls: TlsFiles | undefined;
  readonly #dialMs: number;
  readonly #reqMs: number;
  readonly #totalMs: number;
  readonly #idle: HttpConn[][];
  readonly #busy = new Set<HttpConn>();
  #preferred = 0;
  #closed = false;

  /** @throws {Error} when there is no endpoint or one is not a URL */
  constructor(opts: EtcdOptions) {
    if (opts.endpoints.length === 0) throw new Error("No etcd endpoint is given");
    this.#eps = opts.endpoints.map(parseEndpoint);
    this.#tls = opts.tls;
    this.#dialMs = opts.dialTimeoutMs ?? 1000;
    this.#reqMs = opts.requestTimeoutMs ?? 2000;
    this.#totalMs = opts.totalTimeoutMs ?? 5000;
    this.#idle = this.#eps.map(() => []);
  }

  /** The endpoints, as given. */
  get endpoints(): string[] {
    return this.#eps.map((e) => e.url);
  }

  /** Closes every connection; in-flight calls fail. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const list of this.#idle) for (const c of list.splice(0)) c.close();
    for (const c of this.#busy) c.close();
  }

  /** Reads one key (undefined when absent). */
  async get(key: string): Promise<KeyValue | undefined> {
    return (await this.range(key)).kvs[0];
  }

  /** Reads a key or, with `prefix`, every key under it (sorted by key). */
  async range(key: string, opts: RangeOptions = {}): Promise<RangeResult> {
    const extra: J = {};
    if (opts.limit) extra.limit = String(opts.limit);
    if (opts.keysOnly) extra.keys_only = true;
    if (opts.revision) extra.revision = String(opts.revision);
    const j = await this.call("/v3/kv/range", rangeBody(key, opts.prefix, extra, opts.end));
    return {
      kvs: (j.kvs ?? []).map(toKv),
      count: Number(j.count ?? 0),
      revision: Number(j.header?.revision ?? 0),
    };
  }

  /** Writes a key (attached to `lease` when given). @returns the new revision */
  async put(key: string, value: string, lease?: string): Promise<number> {
    const op = opJson({ put: { key, value, lease } }).request_put;
    const j = await this.call("/v3/kv/put", op);
    return Number(j.header?.revision ?? 0);
  }

  /** Deletes a key or every key under it. @returns how many were deleted */
  async delete(key: string, opts: { prefix?: boolean } = {}): Promise<number> {
    const j = await this.call("/v3/kv/deleterange", rangeBody(key, opts.prefix));
    return Number(j.deleted ?? 0);
  }

  /** Runs a transaction (compare-and-swap). */
  async txn(t: Txn): Promise<TxnResult> {
    const j = await this.call("/v3/kv/txn", {
      compare: t.compare.map(compareJson),
      success: t.success.map(opJson),
      failure: (t.failure ?? []).map(opJson),
    });
    return {
      // proto3 JSON omits a false `succeeded`.
      succeeded: j.succeeded === true,
      revision: Number(j.header?.revision ?? 0),
      responses: (j.responses ?? []).map(opResponse),
    };
  }

  /** Grants a lease of `ttlSec` seconds. @returns its id and the TTL etcd granted */
  async leaseGrant(ttlSec: number): Promise<{ id: string; ttl: number }> {
    const j = await this.call("/v3/lease/grant", { TTL: String(ttlSec) });
    return { id: String(j.ID), ttl: Number(j.TTL ?? 0) };
  }

  /** Refreshes a lease once. @returns its TTL, 0 when the lease is gone */
  async leaseKeepAliveOnce(id: string): Promise<number> {
    const j = await this.call("/v3/lease/keepalive", { ID: id });
    return Number(j.result?.TTL ?? 0);
  }

  /** Revokes a lease (its keys are deleted); a lease already gone is not an error. */
  async leaseRevoke(id: string): Promise<void> {
    try {
      await this.call("/v3/lease/revoke", { ID: id });
    } catch (err) {
      if (err instanceof EtcdError && err.grpcCode === 5) return; // "requested lease not found"
      throw err;
    }
  }

  /** A lease's remaining TTL in seconds (-1 when it is gone). */
  async leaseTimeToLive(id: string): Promise<number> {
    const j = await this.call("/v3/lease/timetolive", { ID: id });
    return Number(j.TTL ?? -1);
  }

  /**
   * Refreshes `id` every `ttlSec / 3` seconds until stopped. `onLost` is called once when
   * etcd says the lease is gone (expired or revoked); failures to reach etcd are retried at
   * the next tick (the lease survives them while its TTL lasts).
   */
  keepAlive(id: string, ttlSec: number, onLost?: (id: string) => void): KeepAlive {
    let stopped = false;
    const tick = async () => {
      try {
        const ttl = await this.leaseKeepAliveOnce(id);
        if (ttl <= 0 && !stopped) {
          stopped = true;
          clearInterval(timer);
          onLost?.(id);
        }
      } catch { /* unreachable now: the next tick tries again */ }
    };
    const timer = setInterval(tick, Math.max(200, (ttlSec * 1000) / 3));
    return {
      id,
      stop() {
        stopped = true;
        clearInterval(timer);
      },
    };
  }

  /**
   * POSTs `body` to a gateway path with failover and back-off; see the module doc.
   *
   * @throws {EtcdUnavailableError} when no member answered in time
   * @throws {EtcdError} when etcd refused the request
   */
  async call(path: string, body: unknown): Promise<J> {
    const deadline = Date.now() + this.#totalMs;
    const payload = JSON.stringify(body);
    let last: Error | undefined;
    let backoff = 50;
    for (let attempt = 0;; attempt++) {
      if (this.#closed) throw new EtcdError("The etcd client is closed");
      const idx = (this.#preferred + attempt) % this.#eps.length;
      const left = deadline - Date.now();
      try {
        const res = await this.#once(idx, path, payload, Math.min(this.#reqMs, left));
        if (res.status === 200) {
          this.#preferred = idx;
          return JSON.parse(res.body);
        }
        last = answerError(this.#eps[idx], path, res.status, res.body);
        if (!(last instanceof EtcdUnavailableError)) throw last;
      } catch (err) {
        if (err instanceof EtcdError && !(err instanceof EtcdUnavailableError)) throw err;
        last = err as Error;
      }
      if (Date.now() >= deadline - 5) {
        throw new EtcdUnavailableError(
          `etcd did not answer ${path} within ${this.#totalMs} ms: ${text(last)}`,
          { cause: last },
        );
      }
      if (idx === (this.#preferred + this.#eps.length - 1) % this.#eps.length) {
        await sleep(Math.min(backoff, deadline - Date.now()));
        backoff = Math.min(backoff * 2, 400);
      }
    }
  }

  /**
   * Opens a streaming request (a watch) on the first member that accepts it; the caller owns
   * the returned connection and must close it.
   */
  async openStream(
    path: string,
    body: unknown,
    headers: string[] = [],
  ): Promise<{ conn: HttpConn; endpoint: string }> {
    const payload = JSON.stringify(body);
    let last: unknown;
    for (let attempt = 0; attempt < this.#eps.length; attempt++) {
      const idx = (this.#preferred + attempt) % this.#eps.length;
      const ep = this.#eps[idx];
      let conn: HttpConn | undefined;
      try {
        conn = await within(this.#dialMs, HttpConn.open(ep, this.#tls), () => conn?.close());
        const c = conn;
        await within(
          this.#reqMs,
          c.send(path, payload, headers).then(() => c.readHead()),
          () => c.close(),
        )
          .then((head) => {
            if (head.status !== 200) throw new TransportError(`HTTP ${head.status}`);
          });
        return { conn: c, endpoint: ep.url };
      } catch (err) {
        conn?.close();
        last = err;
      }
    }
    throw new EtcdUnavailableError(`No etcd member accepted ${path}: ${text(last)}`, {
      cause: last,
    });
  }

  /** One request to one member on a pooled connection. */
  async #once(idx: number, path: string, payload: string, ms: number) {
    const ep = this.#eps[idx];
    const t0 = Date.now();
    let conn = this.#idle[idx].pop();
    if (!conn) {
      const dialing = HttpConn.open(ep, this.#tls);
      conn = await within(Math.min(this.#dialMs, ms), dialing, () => {
        dialing.then((c) => c.close(), () => {});
      }, `Cannot connect to etcd at "${ep.url}"`);
    }
    const c = conn;
    this.#busy.add(c);
    try {
      const res = await within(
        Math.max(1, ms - (Date.now() - t0)),
        (async () => {
          await c.send(path, payload);
          const head = await c.readHead();
          return { status: head.status, body: await c.readBody(head.headers), head };
        })(),
        () => c.close(),
        `etcd at "${ep.url}" did not answer ${path}`,
      );
      const keep = (res.head.headers.get("connection") ?? "").toLowerCase() !== "close";
      if (keep && !c.closed && !this.#closed && this.#idle[idx].length < MAX_IDLE) {
        this.#idle[idx].push(c);
      } else c.close();
      return res;
    } catch (err) {
      c.close();
      throw err instanceof TransportError ? err : new TransportError(text(err), { cause: err });
    } finally {
      this.#busy.delete(c);
    }
  }
}

/** An HTTP answer other than 200 as an error (unavailable when worth another member). */
function answerError(ep: Endpoint, path: string, status: number, body: string): EtcdError {
  let msg = body.trim().slice(0, 200);
  let code = 0;
  try {
    const j = JSON.parse(body);
    msg = String(j.message ?? j.error ?? msg);
    code = Number(j.code ?? 0);
  } catch { /* not JSON: keep the text */ }
  const full = `etcd at "${ep.url}" refused ${path}: ${msg}`;
  const transient = code === 14 || code === 4 || status === 503 || status === 504 ||
    /no leader|leader changed|timed out|not capable|too many requests/i.test(msg);
  return transient ? new EtcdUnavailableError(full) : new EtcdError(full, code);
}

/**
 * Races `p` against a timer; on expiry runs `onTimeout` (close the socket) and throws.
 *
 * The timer is `AbortSignal.timeout`, not `setTimeout`: in Deno 2.9 the first `setTimeout`
 * of a process costs ~7 ms (it loads the Node timers), a lot for a CNI call; the signal's
 * timer holds the process only while the listener is attached, so it is detached at once.
 */
async function within<T>(
  ms: number,
  p: Promise<T>,
  onTimeout: () => void,
  what = "etcd request",
): Promise<T> {
  const signal = AbortSignal.timeout(Math.max(1, ms));
  let fire!: () => void;
  const timeout = new Promise<never>((_, reject) => {
    fire = () => {
      onTimeout();
      reject(new TransportError(`${what}: timed out after ${ms} ms`));
    };
  });
  signal.addEventListener("abort", fire);
  try {
    return await Promise.race([p, timeout]);
  } finally {
    signal.removeEventListener("abort", fire);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}

/**
 * An etcd failure as a CNI error: unavailable → code 11 (try again later), anything else →
 * code 5 (I/O failure); `what` names the action ("Cannot reserve 10.0.0.5").
 */
export function cniError(err: unknown, what: string): CniError {
  if (err instanceof CniError) return CniError.wrap(err, err.code, what);
  const code = err instanceof EtcdUnavailableError ? Code.TryAgainLater : Code.IoFailure;
  return new CniError(code, `${what}: ${text(err)}`, undefined, { cause: err });
}
