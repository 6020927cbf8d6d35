/**
 * `podplex serve [--socket PATH]`: the resident podplex. It listens on a unix socket and runs
 * each CNI call that the shim (`bin/podplex-client.c`) forwards through the same dispatcher a
 * process would (`serve/call.ts`), so a call skips Deno's startup and cold JS. The wire
 * protocol, with its build-id handshake and readiness probe, is defined once in
 * `serve/protocol.ts`. DELs overlap (up to {@link MAX_CONCURRENT_DELS}), every other verb runs
 * alone; see {@link callMode} for why that much is safe.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { CURRENT_VERSION } from "../conf/version.ts";
import { createRoot, type Root } from "./root.ts";
import { parseServeArgs, SERVE_USAGE } from "./serve/args.ts";
import { checkHostPaths, type HostView, viewProblem } from "./serve/view.ts";
import { CallGate, type CallMode } from "./serve_gate.ts";
import { writeAllSync } from "../conf/io.ts";
import {
  type CallFrame,
  decodeClientFrame,
  encodeReply,
  type ProbeInfo,
  PROTOCOL,
  type Reply,
} from "./serve/protocol.ts";
import { type CallContext, notServed, ownNamespaces, refusal, runCall } from "./serve/call.ts";

/** Where the daemon listens unless `--socket` (or the client's PODPLEX_SOCKET) says otherwise. */
export const DEFAULT_SOCKET = PROTOCOL.defaultSocket;

/** How many DELs the daemon runs at once (their kernel waits overlap). */
export const MAX_CONCURRENT_DELS = 8;

/** A call the daemon decoded (the protocol's call frame). */
export type ServeRequest = CallFrame;

/** A reply (the protocol's). */
export type ServeResponse = Reply;

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

/** Reads one client frame's body. */
async function readFrame(conn: Deno.Conn): Promise<Uint8Array> {
  const head = await readFull(conn, 4);
  const len = new DataView(head.buffer).getUint32(0);
  if (len > PROTOCOL.maxFrame) {
    throw new Error(`Frame of ${len} bytes exceeds ${PROTOCOL.maxFrame}`);
  }
  return await readFull(conn, len);
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

/** Logs one line per call on the daemon's stderr (what ran, how). */
function logCall(req: ServeRequest, res: ServeResponse, ms: number | undefined): void {
  const what = res.status === PROTOCOL.notServed
    ? `not served (${res.stderr})`
    : `exit ${res.status} in ${(ms ?? 0).toFixed(1)} ms`;
  const { CNI_COMMAND: verb = "-", CNI_CONTAINERID: id = "-", CNI_IFNAME: ifname = "-" } = req.env;
  say(`podplex serve: ${verb} ${id} ${ifname}: ${what}\n`);
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

/** What the daemon holds across calls. */
interface Daemon extends CallContext {
  gate: CallGate;
  draining: boolean;
}

/** The reply to a readiness probe: ready (0) only for the daemon's own build. */
function probeReply(d: Daemon, build: string): ServeResponse {
  const info: ProbeInfo = {
    protocol: PROTOCOL.version,
    build: d.build,
    ready: d.ready(),
    draining: d.draining,
    inFlight: d.gate.running,
    queued: d.gate.waiting,
  };
  const status = info.ready && build === d.build ? 0 : PROTOCOL.notServed;
  return { status, stdout: JSON.stringify(info), stderr: "" };
}

/** Serves a call: refused ones at once, the others through the gate with their deadline. */
async function serveCall(d: Daemon, req: ServeRequest): Promise<ServeResponse> {
  const why = refusal(req, d);
  if (why !== undefined) {
    const res = notServed(why);
    logCall(req, res, undefined);
    return res;
  }
  return await admitAndRun(req, d.gate, async () => {
    const t0 = performance.now();
    const res = await runCall(req, d.root);
    logCall(req, res, performance.now() - t0);
    return res;
  });
}

async function handle(conn: Deno.Conn, d: Daemon): Promise<void> {
  try {
    let reply: Uint8Array;
    try {
      const frame = decodeClientFrame(await readFrame(conn));
      if (frame.kind === "legacy") {
        reply = encodeReply(notServed(`protocol 1 is not served by build "${d.build}"`), true);
      } else if (frame.kind === "probe") reply = encodeReply(probeReply(d, frame.build));
      else reply = encodeReply(await serveCall(d, frame));
    } catch (e) {
      // A malformed frame was never run: the client may run podplex itself.
      reply = encodeReply(notServed(e instanceof Error ? e.message : String(e)));
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

/**
 * The daemon's build id: the artifact writes it beside its bundle (`build-id`, the payload
 * hash the shim was compiled with); run from a checkout's sources it is the dev build's.
 */
export function readBuildId(): string {
  try {
    const dir = new URL(".", Deno.mainModule);
    const id = Deno.readTextFileSync(new URL("build-id", dir)).trim();
    return id || PROTOCOL.devBuild;
  } catch {
    return PROTOCOL.devBuild;
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
  const args = parseServeArgs(argv);
  if ("help" in args) {
    say(SERVE_USAGE);
    return 0;
  }
  if ("error" in args) {
    say(`podplex serve: ${args.error}\n${SERVE_USAGE}`);
    return 2;
  }
  const view = args.view && hostView(args.view);
  // What runs beside the call loop, started in order, closed in reverse: one line each.
  const services: Service[] = [];
  // Thick mode: external plugins run in the host's mount namespace (serve/view.ts).
  if (view?.mountNs) {
    const thickRoot = root = createRoot({
      exec: { mountNs: view.mountNs, hostRoot: view.root },
    });
    services.push({ close: () => Promise.resolve(thickRoot.close()) });
  }
  let listener: Deno.UnixListener;
  try {
    await prepareSocketPath(args.socket);
    services.push(await startDhcpKeeper(args.dhcp, args.socket));
    await root.meta(); // loaded before the first call, not by it
    if (args.ipam) services.push(await startClusterIpam(args.ipam));
    listener = listenPrivate(args.socket);
  } catch (e) {
    say(`podplex serve: ${e instanceof Error ? e.message : e}\n`);
    await closeAll(services);
    return 1;
  }
  let ready = true;
  const d: Daemon = {
    build: readBuildId(),
    own: ownNamespaces(),
    root,
    gate: new CallGate(MAX_CONCURRENT_DELS),
    draining: false,
    ready: () => ready && !d.draining,
  };
  if (view) d.viewProblem = (call) => viewProblem(view, call);
  say(`podplex serve: listening on ${args.socket} (build ${d.build})\n`);
  await acceptUntilStopped(listener, d);
  ready = false;
  await d.gate.drain();
  await closeAll(services);
  try {
    Deno.removeSync(args.socket); // Deno unlinks on close; this covers older behaviour
  } catch { /* gone already */ }
  say("podplex serve: stopped\n");
  return 0;
}

/** The host view of thick mode, with the mounts that are not the host's dropped (said why). */
function hostView(asked: HostView): HostView {
  const { view, dropped } = checkHostPaths(asked);
  for (const why of dropped) say(`podplex serve: host path ${why}: calls using it run per call\n`);
  say(`podplex serve: thick mode, host paths ${view.paths.join(", ") || "none"}\n`);
  return view;
}

/** Something the daemon runs beside its calls. */
interface Service {
  close(): Promise<void>;
}

async function closeAll(services: Service[]): Promise<void> {
  for (const s of services.reverse()) await s.close().catch(() => {});
}

/** The dhcp IPAM's lease keeper (delegates/ipam/dhcp/keeper_server.ts). */
async function startDhcpKeeper(flags: string[], socket: string): Promise<Service> {
  const { startLeaseKeeper } = await import("../delegates/ipam/dhcp/keeper_server.ts");
  return await startLeaseKeeper(flags, socket, (l) => say(`podplex serve: ${l}\n`));
}

/** The cluster IPAM's node side (cli/ipam.ts): block affinity lease + periodic reconcile. */
async function startClusterIpam(file: string): Promise<Service> {
  const log = (l: string) => say(`podplex serve: ${l}\n`);
  return await (await import("./ipam.ts")).startIpamDaemon(file, log);
}

/**
 * Accepts connections until SIGINT or SIGTERM: then the daemon drains (a call that arrives
 * is "not served" and runs per call), stops accepting and waits for what it accepted.
 */
async function acceptUntilStopped(listener: Deno.UnixListener, d: Daemon): Promise<void> {
  const stop = () => {
    d.draining = true;
    try {
      listener.close();
    } catch { /* already closed */ }
  };
  for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, stop);
  const pending = new Set<Promise<void>>();
  try {
    for await (const conn of listener) {
      const p = handle(conn, d).finally(() => pending.delete(p));
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
    for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.removeSignalListener(sig, stop);
  }
}
