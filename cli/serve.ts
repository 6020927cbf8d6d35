/**
 * `podplex serve [--socket PATH]`: an optional resident podplex. It listens on a unix socket
 * and runs each CNI call that `bin/podplex-client.c` forwards through the same dispatcher a
 * process would (`runCni` with the composition root's resolver, kept for the daemon's life),
 * so a call skips Deno's startup and cold JS. The caller's working directory travels with the
 * call and its relative paths are resolved against it; the daemon never changes its own. DELs overlap (up to {@link MAX_CONCURRENT_DELS}), every other verb runs alone; see
 * {@link callMode} for why that much is safe.
 *
 * Wire format (all integers big-endian; a frame is a u32 length, then that many bytes):
 * - request body: `PPQ1`, u64 netns inode, u64 mount-ns inode, u32 count, then per variable
 *   u32 length + `NAME=value` bytes (only CNI_*, PODPLEX_ARGV0 and PODPLEX_CWD, the client's
 *   working directory, are kept), then u32 length + the stdin bytes.
 * - response body: `PPR1`, i32 status, u32 length + stdout bytes, u32 length + stderr bytes.
 *   status >= 0 is the exit code of a call that ran; {@link NOT_SERVED} means "not run"
 *   (other namespace, malformed request): the client runs podplex itself.
 *
 * Binary, not JSON, so the C client needs no JSON parser, escaping or base64.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { CURRENT_VERSION } from "../conf/version.ts";
import { type CniIo, runCni } from "./cni.ts";
import type { Root } from "./root.ts";
import { CallGate, type CallMode } from "./serve_gate.ts";
import { writeAllSync } from "../conf/io.ts";

/** Where the daemon listens unless `--socket` (or the client's PODPLEX_SOCKET) says otherwise. */
export const DEFAULT_SOCKET = "/run/podplex/podplex.sock";

/** The response status of a request that was not run: the client falls back to exec. */
export const NOT_SERVED = -1;

/** How many DELs the daemon runs at once (their kernel waits overlap). */
export const MAX_CONCURRENT_DELS = 8;

/** The largest request or response body accepted (a conf on stdin is a few KiB). */
export const MAX_FRAME = 16 << 20;

const REQ_MAGIC = "PPQ1";
const RES_MAGIC = "PPR1";
const enc = new TextEncoder();
const dec = new TextDecoder();

/** One decoded request. */
export interface ServeRequest {
  netns: bigint;
  mntns: bigint;
  env: Record<string, string>;
  stdin: Uint8Array;
}

/** One response: `status` is the exit code, or {@link NOT_SERVED}. */
export interface ServeResponse {
  status: number;
  stdout: string;
  stderr: string;
}

/** Whether the client may pass an environment variable to the daemon. */
function forwarded(name: string): boolean {
  return name.startsWith("CNI_") || name === "PODPLEX_ARGV0" || name === "PODPLEX_CWD";
}

/**
 * Decodes a request body (without its length prefix).
 *
 * @throws {Error} naming what is malformed
 */
export function decodeRequest(body: Uint8Array): ServeRequest {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let off = 0;
  const need = (n: number, what: string) => {
    if (off + n > body.length) throw new Error(`Truncated request: no room for ${what}`);
  };
  need(4, "the magic");
  if (dec.decode(body.subarray(0, 4)) !== REQ_MAGIC) throw new Error("Bad request magic");
  off = 4;
  need(16, "the namespace inodes");
  const netns = view.getBigUint64(off);
  const mntns = view.getBigUint64(off + 8);
  off += 16;
  const bytes = (what: string): Uint8Array => {
    need(4, `the length of ${what}`);
    const n = view.getUint32(off);
    off += 4;
    need(n, what);
    off += n;
    return body.subarray(off - n, off);
  };
  need(4, "the variable count");
  const count = view.getUint32(off);
  off += 4;
  const env: Record<string, string> = {};
  for (let i = 0; i < count; i++) {
    const kv = dec.decode(bytes(`variable ${i}`));
    const eq = kv.indexOf("=");
    if (eq > 0 && forwarded(kv.slice(0, eq))) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const stdin = bytes("stdin");
  if (off !== body.length) throw new Error(`Request has ${body.length - off} trailing bytes`);
  return { netns, mntns, env, stdin };
}

/** Encodes a response as a whole frame (length prefix included). */
export function encodeResponse(res: ServeResponse): Uint8Array {
  const out = enc.encode(res.stdout);
  const err = enc.encode(res.stderr);
  const frame = new Uint8Array(4 + 4 + 4 + 4 + out.length + 4 + err.length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, frame.length - 4);
  frame.set(enc.encode(RES_MAGIC), 4);
  view.setInt32(8, res.status);
  view.setUint32(12, out.length);
  frame.set(out, 16);
  view.setUint32(16 + out.length, err.length);
  frame.set(err, 20 + out.length);
  return frame;
}

/** The daemon's own namespace identity, compared with each request's. */
export interface NsIdentity {
  netns: bigint;
  mntns: bigint;
}

/** The calling process's netns and mount-ns inodes (needs --allow-all: Deno guards /proc). */
export function ownNamespaces(): NsIdentity {
  return {
    netns: BigInt(Deno.statSync("/proc/self/ns/net").ino ?? 0),
    mntns: BigInt(Deno.statSync("/proc/self/ns/mnt").ino ?? 0),
  };
}

/**
 * Runs one decoded request through the CNI dispatcher, with stdout and stderr captured.
 * A request from another netns or mount namespace is not run: paths like CNI_NETNS and the
 * conf's files mean something else there, so the client runs podplex itself.
 */
export async function serveRequest(
  req: ServeRequest,
  own: NsIdentity,
  root: Root,
): Promise<ServeResponse> {
  if (req.netns !== own.netns || req.mntns !== own.mntns) {
    return { status: NOT_SERVED, stdout: "", stderr: "wrong namespace" };
  }
  const { PODPLEX_CWD: cwd, ...env } = req.env;
  if (cwd !== undefined && !cwd.startsWith("/")) {
    return { status: NOT_SERVED, stdout: "", stderr: `the caller's cwd "${cwd}" is not absolute` };
  }
  return await runCaptured(env, req.stdin, cwd, root);
}

async function runCaptured(
  env: Record<string, string>,
  stdin: Uint8Array,
  cwd: string | undefined,
  root: Root,
): Promise<ServeResponse> {
  let stdout = "";
  let stderr = "";
  const argv0 = env.PODPLEX_ARGV0;
  const io: CniIo = {
    env,
    stdin: () => Promise.resolve(stdin),
    stdout: (s: string) => void (stdout += s),
    stderr: (s: string) => void (stderr += s),
    argv0,
  };
  // Relative paths (a conf's networksDir, CNI_NETNS) mean what they mean to the caller.
  if (cwd) io.cwd = cwd;
  try {
    const status = await runCni(io, root.resolver(argv0));
    return { status, stdout, stderr };
  } catch (e) {
    // runCni wraps errors itself; this is a last guard so the daemon never dies on a call.
    const err = CniError.wrap(e);
    stdout += JSON.stringify(err.toJSON(CURRENT_VERSION), null, 4) + "\n";
    return { status: 1, stdout, stderr };
  }
}

async function readFull(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const buf = new Uint8Array(n);
  for (let off = 0; off < n;) {
    const got = await conn.read(buf.subarray(off));
    if (got === null) throw new Error(`Connection closed after ${off} of ${n} bytes`);
    off += got;
  }
  return buf;
}

async function writeFull(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

/** Reads one request frame; a malformed one becomes a NOT_SERVED answer. */
async function readRequest(conn: Deno.Conn): Promise<ServeRequest | ServeResponse> {
  try {
    const head = await readFull(conn, 4);
    const len = new DataView(head.buffer).getUint32(0);
    if (len > MAX_FRAME) throw new Error(`Request of ${len} bytes exceeds ${MAX_FRAME}`);
    return decodeRequest(await readFull(conn, len));
  } catch (e) {
    return { status: NOT_SERVED, stdout: "", stderr: e instanceof Error ? e.message : String(e) };
  }
}

/**
 * How a request may run next to others. Only DEL overlaps, with other DELs: each works on
 * its own container's state file and netns; host-local serialises lease changes with an
 * in-process per-directory lock plus flock (delegates/ipam/disk_store.ts); netns windows are
 * synchronous, so no other call's JS runs inside one. Its long part, the group delete, waits
 * on an FFI worker thread. ADD, CHECK, GC, STATUS and VERSION run alone.
 */
export function callMode(req: ServeRequest): CallMode {
  return { shared: req.env.CNI_COMMAND === "DEL", key: "" };
}

/** Serves one request and logs one line per call on the daemon's stderr (what ran, how). */
async function timed(req: ServeRequest, own: NsIdentity, root: Root): Promise<ServeResponse> {
  const t0 = performance.now();
  const res = await serveRequest(req, own, root);
  const what = res.status === NOT_SERVED
    ? `not served (${res.stderr})`
    : `exit ${res.status} in ${(performance.now() - t0).toFixed(1)} ms`;
  const { CNI_COMMAND: verb = "-", CNI_CONTAINERID: id = "-", CNI_IFNAME: ifname = "-" } = req.env;
  say(`podplex serve: ${verb} ${id} ${ifname}: ${what}\n`);
  return res;
}

/**
 * How long a call may take from its arrival, queueing included, before its client is told
 * 11 (try again later). Below the client's own 120 s, so the client hears it from the
 * daemon; a call still queued then is never started, so no call runs whose client was
 * already answered. A call that is running at its deadline goes on (it cannot be stopped
 * halfway and leave the pod half made) and keeps its place in the gate until it ends.
 */
export const CALL_DEADLINE_MS = 100_000;

/** The answer of a call that missed its deadline (code 11 on the client's stdout). */
export function lateResponse(req: ServeRequest, started: boolean, ms: number): ServeResponse {
  const msg = started
    ? `podplex serve: ${req.env.CNI_COMMAND} did not finish within ${ms} ms; it may still complete`
    : `podplex serve: ${req.env.CNI_COMMAND} waited ${ms} ms behind other calls and was not started`;
  const err = new CniError(Code.TryAgainLater, msg);
  return {
    status: 1,
    stdout: JSON.stringify(err.toJSON(CURRENT_VERSION), null, 4) + "\n",
    stderr: "",
  };
}

/** Runs a request through the gate with its deadline (see {@linkcode CALL_DEADLINE_MS}). */
export async function admitAndRun(
  req: ServeRequest,
  gate: CallGate,
  run: () => Promise<ServeResponse>,
  deadlineMs: number = CALL_DEADLINE_MS,
): Promise<ServeResponse> {
  const expires = Date.now() + deadlineMs;
  let started = false;
  const work = gate.run(callMode(req), () => {
    if (Date.now() >= expires) return Promise.resolve(lateResponse(req, false, deadlineMs));
    started = true;
    return run();
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<ServeResponse>((resolve) => {
    timer = setTimeout(() => resolve(lateResponse(req, started, deadlineMs)), deadlineMs);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function handle(
  conn: Deno.Conn,
  gate: CallGate,
  own: NsIdentity,
  root: Root,
): Promise<void> {
  try {
    const req = await readRequest(conn);
    const res = "status" in req ? req : await admitAndRun(req, gate, () => timed(req, own, root));
    await writeFull(conn, encodeResponse(res));
  } catch {
    // The client went away; it reports "did not answer" itself.
  } finally {
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

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
async function prepareSocketPath(path: string): Promise<void> {
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
function listenPrivate(path: string): Deno.UnixListener {
  const old = Deno.umask(0o177);
  try {
    return Deno.listen({ transport: "unix", path });
  } finally {
    Deno.umask(old);
  }
}

function parseArgs(
  argv: string[],
): { socket: string; dhcp: string[]; ipam?: string } | { help: true } | { error: string } {
  let socket = DEFAULT_SOCKET;
  const dhcp: string[] = [];
  let ipam: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--help" || a === "-h") return { help: true };
    if (a === "--socket" && i + 1 < argv.length) socket = argv[++i];
    else if (a === "--ipam-network" && i + 1 < argv.length) ipam = argv[++i];
    else if (a.startsWith("--socket=")) socket = a.slice("--socket=".length);
    else if (a.startsWith("--dhcp-")) {
      dhcp.push(a); // the lease keeper's own flags, with their value
      if (!a.includes("=") && i + 1 < argv.length) dhcp.push(argv[++i]);
    } else return { error: `Unknown argument "${a}"` };
  }
  if (socket === "") return { error: `Invalid "--socket": the path is empty` };
  return { socket, dhcp, ipam };
}

const USAGE = "usage: podplex serve [--socket PATH]   (default " + DEFAULT_SOCKET + ")\n" +
  "  [--dhcp-socket PATH] [--dhcp-state-dir DIR] [--dhcp-timeout 10s] [--dhcp-resend-max 62s]\n" +
  "  [--dhcp-resend-timeout 208s] [--ipam-network FILE (cluster IPAM: affinity lease, reconcile)]\n" +
  "  serves CNI calls forwarded by .tools/podplex-client (DELs overlap, other verbs run\n" +
  "  alone) and keeps the dhcp IPAM's leases, until SIGINT/SIGTERM\n";

function say(text: string): void {
  writeAllSync(Deno.stderr, text);
}

/**
 * Runs the daemon until SIGINT or SIGTERM: then it stops accepting, finishes the calls it
 * accepted, removes the socket and returns 0.
 *
 * @param argv the arguments after `serve`
 * @returns the exit code (2 for bad arguments, 1 when the socket cannot be set up)
 */
export async function main(argv: string[], root: Root): Promise<number> {
  const args = parseArgs(argv);
  if ("help" in args) {
    say(USAGE);
    return 0;
  }
  if ("error" in args) {
    say(`podplex serve: ${args.error}\n${USAGE}`);
    return 2;
  }
  let listener: Deno.UnixListener;
  let dhcp: { close(): Promise<void> };
  let ipam: { close(): Promise<void> } | undefined;
  try {
    await prepareSocketPath(args.socket);
    // The dhcp IPAM's lease keeper (delegates/ipam/dhcp/keeper_server.ts).
    const { startLeaseKeeper } = await import("../delegates/ipam/dhcp/keeper_server.ts");
    dhcp = await startLeaseKeeper(args.dhcp, args.socket, (l) => say(`podplex serve: ${l}\n`));
    listener = listenPrivate(args.socket);
    // The cluster IPAM's node side (cli/ipam.ts): block affinity lease + periodic reconcile.
    if (args.ipam) {
      const log = (l: string) => say(`podplex serve: ${l}\n`);
      ipam = await (await import("./ipam.ts")).startIpamDaemon(args.ipam, log);
    }
  } catch (e) {
    say(`podplex serve: ${e instanceof Error ? e.message : e}\n`);
    return 1;
  }
  const own = ownNamespaces();
  const gate = new CallGate(MAX_CONCURRENT_DELS);
  const stop = () => {
    try {
      listener.close();
    } catch { /* already closed */ }
  };
  for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, stop);
  say(`podplex serve: listening on ${args.socket}\n`);
  const pending = new Set<Promise<void>>();
  try {
    for await (const conn of listener) {
      const p = handle(conn, gate, own, root).finally(() => pending.delete(p));
      pending.add(p);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.BadResource)) throw e;
  } finally {
    // A connection still sending its request must not hold the shutdown forever.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise((r) => timer = setTimeout(r, 5000));
    await Promise.race([Promise.allSettled(pending), grace]);
    clearTimeout(timer);
    await gate.drain();
    await dhcp.close();
    await ipam?.close();
    try {
      Deno.removeSync(args.socket); // Deno unlinks on close; this covers older behaviour
    } catch { /* gone already */ }
    for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.removeSignalListener(sig, stop);
  }
  say("podplex serve: stopped\n");
  return 0;
}
