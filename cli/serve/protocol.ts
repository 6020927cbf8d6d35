/**
 * The one definition of the wire protocol between `podplex serve` and its client (the shim
 * `bin/podplex-client.c`, which the node artifact's entry bin/node-entry.c links in). What C
 * needs is generated from here at build time by `scripts/gen_protocol.ts`: the header the
 * client and the entry are compiled with ({@linkcode cHeader}). Nothing else spells a magic, a
 * limit or a default path.
 *
 * Frames: a u32 length (big-endian, like every integer here), then that many bytes of body.
 *
 * - call (client → daemon): `PPQ2`, str build id, u64 netns inode and u64 mount-ns inode of
 *   the client, u64 dev + u64 inode of CNI_NETNS as the client sees it (0 0 when unset or
 *   absent), u64 dev + u64 inode of the client's working directory, u32 count, then per
 *   variable a str `NAME=value` (only {@linkcode forwardedVariable}s), then a str of the
 *   stdin bytes. A str is a u32 length and that many bytes.
 * - probe (client → daemon, the readiness check): `PPP2`, str build id.
 * - reply (daemon → client): `PPR2`, i32 status, str stdout, str stderr. A status >= 0 is the
 *   exit code of a call that ran; {@linkcode PROTOCOL.notServed} means "not run" (another
 *   build, another netns, paths the daemon does not share, not ready): the client then runs
 *   podplex itself. A probe's reply has status 0 when the daemon is ready for calls of the
 *   prober's build, and a JSON {@linkcode ProbeInfo} as stdout.
 *
 * The build id is the handshake: a daemon serves only a client of its own build (the
 * artifact's payload hash, `scripts/artifact.sh`), so after an upgrade a new shim never gets
 * an old daemon's behaviour, and the other way round; both fall back to per call. A frame
 * of protocol 1 (`PPQ1`) is answered "not served" in protocol 1's reply (`PPR1`), so a shim
 * of an older build falls back too.
 *
 * Binary, not JSON, so the C client needs no JSON parser, escaping or base64.
 *
 * @module
 */

/** The protocol's constants (the generated C header and shell constants come from these). */
export const PROTOCOL = Object.freeze({
  version: 2,
  callMagic: "PPQ2",
  probeMagic: "PPP2",
  replyMagic: "PPR2",
  /** Protocol 1's frames, recognised so that an older shim is told "not served". */
  legacyCallMagic: "PPQ1",
  legacyReplyMagic: "PPR1",
  /** The status of a call that was not run: the client falls back to per call. */
  notServed: -1,
  /**
   * The largest body accepted either way. A call's frame is its env (a few KiB) and its
   * stdin: a conflist with a prevResult is KiBs, 4 MiB leaves hundreds of times that. A
   * larger call is not lost: the daemon refuses it before reading its body and the client
   * runs it per call, where stdin may hold up to 16 MiB (cli/main.ts). The bound is what
   * one connection can make the daemon hold; all of them together are capped too
   * (serve/frames.ts).
   */
  maxFrame: 4 << 20,
  /** Where the daemon listens and the client connects unless told otherwise. */
  defaultSocket: "/run/podplex/podplex.sock",
  /** The client's variable naming another socket. */
  socketEnv: "PODPLEX_SOCKET",
  /** The client's variable naming its reply timeout in seconds. */
  timeoutEnv: "PODPLEX_CLIENT_TIMEOUT",
  /** The client's reply timeout unless told otherwise (above the daemon's call deadline). */
  clientTimeoutS: 120,
  /** Variables forwarded by prefix. */
  forwardedPrefix: "CNI_",
  /** Variables forwarded by name. */
  forwardedNames: Object.freeze(["PODPLEX_ARGV0"]),
  /** The variable carrying the client's working directory (set by the client itself). */
  cwdVariable: "PODPLEX_CWD",
  /** The build id of a build that is not an artifact (a checkout's `.tools/podplex-client`). */
  devBuild: "dev",
});

/** One decoded call. */
export interface CallFrame {
  kind: "call";
  build: string;
  netns: bigint;
  mntns: bigint;
  /** CNI_NETNS as the client sees it (0n 0n: unset or absent). */
  target: FileId;
  /** The client's working directory (0n 0n: unknown). */
  cwd: FileId;
  env: Record<string, string>;
  stdin: Uint8Array;
}

/** A probe: is a daemon of this build ready? */
export interface ProbeFrame {
  kind: "probe";
  build: string;
}

/** A protocol 1 call (answered "not served" in protocol 1). */
export interface LegacyFrame {
  kind: "legacy";
}

/** A device and inode pair: what "the same file" means across mount namespaces. */
export interface FileId {
  dev: bigint;
  ino: bigint;
}

/** A decoded client frame. */
export type ClientFrame = CallFrame | ProbeFrame | LegacyFrame;

/** A reply: `status` is the exit code, or {@linkcode PROTOCOL.notServed}. */
export interface Reply {
  status: number;
  stdout: string;
  stderr: string;
}

/** What a probe's reply carries as stdout. */
export interface ProbeInfo {
  protocol: number;
  build: string;
  ready: boolean;
  draining: boolean;
  inFlight: number;
  queued: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Whether the client may pass an environment variable to the daemon. */
export function forwardedVariable(name: string): boolean {
  return name.startsWith(PROTOCOL.forwardedPrefix) || PROTOCOL.forwardedNames.includes(name) ||
    name === PROTOCOL.cwdVariable;
}

/** A reader over one body that names what is missing when it runs out. */
class BodyReader {
  #off = 0;
  readonly #view: DataView;
  constructor(readonly body: Uint8Array) {
    this.#view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  }
  #need(n: number, what: string): void {
    if (this.#off + n > this.body.length) {
      throw new Error(`Truncated frame: no room for ${what}`);
    }
  }
  u32(what: string): number {
    this.#need(4, what);
    const v = this.#view.getUint32(this.#off);
    this.#off += 4;
    return v;
  }
  u64(what: string): bigint {
    this.#need(8, what);
    const v = this.#view.getBigUint64(this.#off);
    this.#off += 8;
    return v;
  }
  bytes(what: string): Uint8Array {
    const n = this.u32(`the length of ${what}`);
    this.#need(n, what);
    this.#off += n;
    return this.body.subarray(this.#off - n, this.#off);
  }
  fileId(what: string): FileId {
    return { dev: this.u64(`the device of ${what}`), ino: this.u64(`the inode of ${what}`) };
  }
  end(): void {
    const left = this.body.length - this.#off;
    if (left !== 0) throw new Error(`Frame has ${left} trailing bytes`);
  }
}

/**
 * Decodes a client frame's body (without its length prefix).
 *
 * @throws {Error} naming what is malformed
 */
export function decodeClientFrame(body: Uint8Array): ClientFrame {
  if (body.length < 4) throw new Error("Truncated frame: no room for the magic");
  const magic = dec.decode(body.subarray(0, 4));
  const r = new BodyReader(body.subarray(4));
  if (magic === PROTOCOL.legacyCallMagic) return { kind: "legacy" };
  if (magic === PROTOCOL.probeMagic) {
    const build = dec.decode(r.bytes("the build id"));
    r.end();
    return { kind: "probe", build };
  }
  if (magic !== PROTOCOL.callMagic) throw new Error(`Bad frame magic ${JSON.stringify(magic)}`);
  const build = dec.decode(r.bytes("the build id"));
  const netns = r.u64("the netns inode");
  const mntns = r.u64("the mount-ns inode");
  const target = r.fileId("CNI_NETNS");
  const cwd = r.fileId("the working directory");
  const count = r.u32("the variable count");
  const env: Record<string, string> = {};
  for (let i = 0; i < count; i++) {
    const kv = dec.decode(r.bytes(`variable ${i}`));
    const eq = kv.indexOf("=");
    if (eq > 0 && forwardedVariable(kv.slice(0, eq))) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const stdin = r.bytes("stdin");
  r.end();
  return { kind: "call", build, netns, mntns, target, cwd, env, stdin };
}

/** A growing byte buffer for encoding frames. */
class BodyWriter {
  #parts: Uint8Array[] = [];
  #len = 0;
  raw(b: Uint8Array): this {
    this.#parts.push(b);
    this.#len += b.length;
    return this;
  }
  u32(v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0);
    return this.raw(b);
  }
  i32(v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, v);
    return this.raw(b);
  }
  u64(v: bigint): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v);
    return this.raw(b);
  }
  str(s: string | Uint8Array): this {
    const b = typeof s === "string" ? enc.encode(s) : s;
    return this.u32(b.length).raw(b);
  }
  /** The whole frame: the length prefix, then the body. */
  frame(): Uint8Array {
    const out = new Uint8Array(4 + this.#len);
    new DataView(out.buffer).setUint32(0, this.#len);
    let off = 4;
    for (const p of this.#parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}

/** Encodes a reply as a whole frame; `legacy` answers a protocol 1 client in its format. */
export function encodeReply(res: Reply, legacy = false): Uint8Array {
  const magic = legacy ? PROTOCOL.legacyReplyMagic : PROTOCOL.replyMagic;
  return new BodyWriter().raw(enc.encode(magic)).i32(res.status).str(res.stdout).str(res.stderr)
    .frame();
}

/** Encodes a call as the client does (tests, the bench's TypeScript client). */
export function encodeCall(c: Omit<CallFrame, "kind">): Uint8Array {
  const w = new BodyWriter().raw(enc.encode(PROTOCOL.callMagic)).str(c.build)
    .u64(c.netns).u64(c.mntns).u64(c.target.dev).u64(c.target.ino).u64(c.cwd.dev).u64(c.cwd.ino);
  const vars = Object.entries(c.env);
  w.u32(vars.length);
  for (const [k, v] of vars) w.str(`${k}=${v}`);
  return w.str(c.stdin).frame();
}

/** Encodes a probe. */
export function encodeProbe(build: string): Uint8Array {
  return new BodyWriter().raw(enc.encode(PROTOCOL.probeMagic)).str(build).frame();
}

/**
 * Decodes a reply body (without its length prefix), either protocol.
 *
 * @throws {Error} naming what is malformed
 */
export function decodeReply(body: Uint8Array): Reply & { legacy: boolean } {
  const magic = dec.decode(body.subarray(0, 4));
  if (magic !== PROTOCOL.replyMagic && magic !== PROTOCOL.legacyReplyMagic) {
    throw new Error(`Bad reply magic ${JSON.stringify(magic)}`);
  }
  const r = new BodyReader(body.subarray(4));
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  if (body.length < 8) throw new Error("Truncated frame: no room for the status");
  const status = view.getInt32(4);
  r.u32("the status");
  const stdout = dec.decode(r.bytes("stdout"));
  const stderr = dec.decode(r.bytes("stderr"));
  r.end();
  return { status, stdout, stderr, legacy: magic === PROTOCOL.legacyReplyMagic };
}

function cString(s: string): string {
  return JSON.stringify(s); // ASCII constants only: JSON escaping is C escaping here
}

/** The C header the client is compiled with (`scripts/gen_protocol.ts --c`). */
export function cHeader(): string {
  const p = PROTOCOL;
  const names = [...p.forwardedNames].map((n) => cString(`${n}=`)).join(", ");
  return [
    "/* Generated by scripts/gen_protocol.ts from cli/serve/protocol.ts: do not edit. */",
    "#ifndef PODPLEX_PROTOCOL_H",
    "#define PODPLEX_PROTOCOL_H",
    `#define PP_PROTOCOL_VERSION ${p.version}`,
    `#define PP_CALL_MAGIC ${cString(p.callMagic)}`,
    `#define PP_PROBE_MAGIC ${cString(p.probeMagic)}`,
    `#define PP_REPLY_MAGIC ${cString(p.replyMagic)}`,
    `#define PP_LEGACY_REPLY_MAGIC ${cString(p.legacyReplyMagic)}`,
    `#define PP_NOT_SERVED (${p.notServed})`,
    `#define PP_MAX_FRAME ${p.maxFrame}u`,
    `#define PP_DEFAULT_SOCKET ${cString(p.defaultSocket)}`,
    `#define PP_SOCKET_ENV ${cString(p.socketEnv)}`,
    `#define PP_TIMEOUT_ENV ${cString(p.timeoutEnv)}`,
    `#define PP_CLIENT_TIMEOUT_S ${p.clientTimeoutS}`,
    `#define PP_FORWARD_PREFIX ${cString(p.forwardedPrefix)}`,
    `#define PP_FORWARD_NAMES { ${names}, 0 }`,
    `#define PP_CWD_VARIABLE ${cString(p.cwdVariable)}`,
    `#define PP_DEV_BUILD ${cString(p.devBuild)}`,
    "#endif",
    "",
  ].join("\n");
}
