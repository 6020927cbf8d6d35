/**
 * Conformance of the serve protocol (cli/serve/protocol.ts, its one definition): the same
 * frames go to the TypeScript server (a real `podplex serve` of the artifact) and to the C
 * client (the artifact's `podplex-client`), byte for byte.
 *
 * - Each call in {@link CALLS} is made by the C client against a capturing socket; the TS
 *   codec decodes the captured frame and re-encodes it to the very same bytes. The bytes go
 *   to the real daemon, and the daemon's reply bytes go back to the C client through a
 *   replaying socket: it must print and return exactly what it does against the daemon.
 * - {@link REPLIES} (well-formed and malformed replies) go to the C client and to the TS
 *   decoder, which must agree on each: accepted with the same fields, or refused (code 11,
 *   never a fallback once the request is sent).
 * - Frames of another build, of protocol 1, and malformed ones go to the daemon: "not
 *   served", in the protocol the client speaks; a client of another build falls back.
 */
import assert from "node:assert/strict";
import {
  decodeClientFrame,
  decodeReply,
  encodeCall,
  encodeProbe,
  encodeReply,
  PROTOCOL,
} from "../cli/serve/protocol.ts";
import { isRoot, run, tempDir } from "./testutils.ts";
import { entryVersion } from "../cli/_install_artifact.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const enc = new TextEncoder();
const dec = new TextDecoder();
const FALLBACK = ["sh", "-c", 'cat >/dev/null; echo "fallback ran"'];

/** The artifact's payload dir (dist/node/podplex.d/<id>) and its build id. */
async function artifact(): Promise<{ client: string; build: string }> {
  const text = await Deno.readTextFile(`${ROOT}/dist/node/podplex`);
  const build = entryVersion(text)!;
  return { client: `${ROOT}/dist/node/podplex.d/${build}/podplex-client`, build };
}

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function client(
  bin: string,
  env: Record<string, string>,
  stdin = "",
  args: string[] = ["--", ...FALLBACK],
): Promise<Outcome> {
  const child = new Deno.Command(bin, {
    args,
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", ...env },
    clearEnv: true,
    cwd: "/",
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(enc.encode(stdin)).catch(() => {});
  await w.close().catch(() => {});
  const out = await child.output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function readFrameBytes(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: number[] = [];
  const buf = new Uint8Array(65536);
  let want = -1;
  while (want < 0 || chunks.length < want) {
    const n = await conn.read(buf);
    if (n === null) break;
    chunks.push(...buf.subarray(0, n));
    if (want < 0 && chunks.length >= 4) {
      want = 4 + new DataView(new Uint8Array(chunks.slice(0, 4)).buffer).getUint32(0);
    }
  }
  return new Uint8Array(chunks);
}

/** A socket that records the first frame it gets and answers it with `reply` bytes. */
async function oneShot(
  path: string,
  reply: Uint8Array,
  fn: () => Promise<Outcome>,
): Promise<{ frame: Uint8Array; out: Outcome }> {
  const listener = Deno.listen({ transport: "unix", path });
  let frame: Uint8Array = new Uint8Array();
  const served = (async () => {
    const conn = await listener.accept();
    try {
      frame = await readFrameBytes(conn);
      await conn.write(reply).catch(() => {});
    } finally {
      conn.close();
    }
  })();
  try {
    const out = await fn();
    await served;
    return { frame, out };
  } finally {
    listener.close();
    await Deno.remove(path).catch(() => {});
  }
}

/** Sends raw bytes to a socket and returns the reply frame's body. */
async function exchange(socket: string, bytes: Uint8Array): Promise<Uint8Array> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  try {
    await conn.write(bytes);
    return (await readFrameBytes(conn)).subarray(4);
  } finally {
    conn.close();
  }
}

async function startDaemon(socket: string): Promise<Deno.ChildProcess & AsyncDisposable> {
  const child = new Deno.Command(`${ROOT}/bin/podplex`, {
    args: ["serve", "--socket", socket, "--dhcp-socket", `${socket}.dhcp`],
    stdout: "null",
    stderr: "null",
  }).spawn();
  for (let i = 0; !(await Deno.lstat(socket).then((s) => s.isSocket, () => false)); i++) {
    if (i > 200) throw new Error("podplex serve did not start");
    await new Promise((r) => setTimeout(r, 50));
  }
  return Object.assign(child, {
    async [Symbol.asyncDispose]() {
      child.kill("SIGKILL");
      await child.status;
    },
  });
}

/** Calls whose frames are compared; each answered by the daemon without root privileges. */
const CALLS: Array<{ name: string; env: Record<string, string>; stdin: string }> = [
  { name: "VERSION", env: { CNI_COMMAND: "VERSION" }, stdin: "" },
  {
    name: "ADD with a bad conf (code 7), unforwarded variables dropped",
    env: {
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "ppt-proto",
      CNI_NETNS: "/proc/self/ns/net",
      CNI_IFNAME: "eth0",
      CNI_PATH: "/usr/lib/cni",
      HOME: "/root",
      PODPLEX_ARGV0: "podplex",
    },
    stdin: '{"cniVersion":"1.0.0","name":"x","type":"podplex","clusterNetwrok":"y"}',
  },
  {
    name: "DEL with unicode and an empty value",
    env: { CNI_COMMAND: "DEL", CNI_CONTAINERID: "ppt-ü", CNI_IFNAME: "eth0", CNI_ARGS: "" },
    stdin: '{"cniVersion":"1.0.0","name":"ünï","type":"nope"}',
  },
];

Deno.test({
  name: "the C client's frames and the TS server's replies are the same bytes on both sides",
  ignore: !isRoot,
  async fn() {
    const { client: bin, build } = await artifact();
    await using dir = await tempDir("pptproto");
    const socket = `${dir.path}/d.sock`;
    await using _d = await startDaemon(socket);
    for (const c of CALLS) {
      const env = { ...c.env, [PROTOCOL.socketEnv]: `${dir.path}/capture.sock` };
      const { frame } = await oneShot(
        env[PROTOCOL.socketEnv],
        new Uint8Array(),
        () => client(bin, env, c.stdin),
      );
      const decoded = decodeClientFrame(frame.subarray(4));
      assert.equal(decoded.kind, "call", c.name);
      if (decoded.kind !== "call") continue;
      assert.equal(decoded.build, build);
      const want = Object.fromEntries(
        Object.entries(c.env).filter(([k]) => k.startsWith("CNI_") || k === "PODPLEX_ARGV0"),
      );
      const { [PROTOCOL.cwdVariable]: cwd, ...got } = decoded.env;
      assert.deepEqual(got, want, c.name);
      assert.equal(cwd, "/");
      const root = Deno.statSync("/");
      assert.deepEqual(decoded.cwd, { dev: BigInt(root.dev), ino: BigInt(root.ino!) });
      assert.equal(dec.decode(decoded.stdin), c.stdin);
      assert.deepEqual(encodeCall(decoded), frame, `${c.name}: TS re-encodes the C bytes`);

      // The captured bytes to the real daemon; its reply bytes replayed to the C client.
      const reply = await exchange(socket, frame);
      const direct = await client(bin, { ...c.env, [PROTOCOL.socketEnv]: socket }, c.stdin);
      const replayEnv = { ...c.env, [PROTOCOL.socketEnv]: `${dir.path}/replay.sock` };
      const lengthPrefixed = new Uint8Array(4 + reply.length);
      new DataView(lengthPrefixed.buffer).setUint32(0, reply.length);
      lengthPrefixed.set(reply, 4);
      const { out: replayed } = await oneShot(
        replayEnv[PROTOCOL.socketEnv],
        lengthPrefixed,
        () => client(bin, replayEnv, c.stdin),
      );
      assert.deepEqual(replayed, direct, c.name);
      const r = decodeReply(reply);
      assert.equal(r.status, direct.code, c.name);
      assert.equal(r.stdout, direct.stdout, c.name);
      assert(!direct.stdout.includes("fallback ran"), `${c.name}: served by the daemon`);
    }
  },
});

/** Reply frames (length prefix included): what the C client and the TS decoder make of each. */
const REPLIES: Array<{ name: string; bytes: Uint8Array; accepted: boolean; fallback?: boolean }> = [
  {
    name: "a result",
    bytes: encodeReply({ status: 0, stdout: '{"ok":1}\n', stderr: "note\n" }),
    accepted: true,
  },
  { name: "an exit 1", bytes: encodeReply({ status: 1, stdout: "e", stderr: "" }), accepted: true },
  {
    name: "not served",
    bytes: encodeReply({ status: PROTOCOL.notServed, stdout: "", stderr: "x" }),
    accepted: true,
    fallback: true,
  },
  {
    name: "protocol 1's not served",
    bytes: encodeReply({ status: PROTOCOL.notServed, stdout: "", stderr: "old" }, true),
    accepted: true,
    fallback: true,
  },
  {
    name: "protocol 1's status 0 (an old daemon never runs a protocol 2 call)",
    bytes: encodeReply({ status: 0, stdout: "{}", stderr: "" }, true),
    accepted: false,
  },
  { name: "a bad magic", bytes: patch(encodeReply(ok()), 4, enc.encode("XXXX")), accepted: false },
  { name: "a truncated body", bytes: encodeReply(ok()).subarray(0, 14), accepted: false },
  {
    name: "a stdout length past the end",
    bytes: patch(encodeReply(ok()), 12, u32(99)),
    accepted: false,
  },
  { name: "a length below the minimum", bytes: u32(3), accepted: false },
  { name: "a length above the maximum", bytes: u32(PROTOCOL.maxFrame + 1), accepted: false },
];

function ok() {
  return { status: 0, stdout: "{}", stderr: "" };
}

function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v);
  return b;
}

function patch(bytes: Uint8Array, at: number, part: Uint8Array): Uint8Array {
  const out = bytes.slice();
  out.set(part, at);
  return out;
}

function tsDecode(bytes: Uint8Array): ReturnType<typeof decodeReply> | undefined {
  try {
    if (bytes.length < 4) return undefined;
    const len = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0);
    if (len > PROTOCOL.maxFrame || len + 4 !== bytes.length) return undefined;
    const r = decodeReply(bytes.subarray(4));
    return r.legacy && r.status !== PROTOCOL.notServed ? undefined : r;
  } catch {
    return undefined;
  }
}

Deno.test({
  name: "the C client and the TS decoder agree on every reply frame, good and malformed",
  ignore: !isRoot,
  async fn() {
    const { client: bin } = await artifact();
    await using dir = await tempDir("pptproto");
    for (const r of REPLIES) {
      const path = `${dir.path}/r.sock`;
      const env = { CNI_COMMAND: "ADD", [PROTOCOL.socketEnv]: path, PODPLEX_CLIENT_TIMEOUT: "2" };
      const { out } = await oneShot(path, r.bytes, () => client(bin, env, "{}"));
      const ts = tsDecode(r.bytes);
      assert.equal(ts !== undefined, r.accepted, `${r.name}: TS decoder`);
      if (!r.accepted) {
        assert.equal(out.code, 1, r.name);
        assert.equal(JSON.parse(out.stdout).code, 11, `${r.name}: ${out.stdout}`);
        assert(!out.stdout.includes("fallback ran"), `${r.name}: no fallback once sent`);
      } else if (r.fallback) {
        assert.equal(out.stdout, "fallback ran\n", r.name);
      } else {
        assert.deepEqual(out, { code: ts!.status, stdout: ts!.stdout, stderr: ts!.stderr }, r.name);
      }
    }
  },
});

Deno.test({
  name: "the daemon answers other builds, protocol 1 and malformed frames 'not served'",
  ignore: !isRoot,
  async fn() {
    const { client: bin, build } = await artifact();
    await using dir = await tempDir("pptproto");
    const socket = `${dir.path}/d.sock`;
    await using _d = await startDaemon(socket);
    const call = (b: string) =>
      encodeCall({
        build: b,
        netns: BigInt(Deno.statSync("/proc/self/ns/net").ino!),
        mntns: BigInt(Deno.statSync("/proc/self/ns/mnt").ino!),
        target: { dev: 0n, ino: 0n },
        cwd: { dev: 0n, ino: 0n },
        env: { CNI_COMMAND: "VERSION" },
        stdin: new Uint8Array(),
      });
    const own = decodeReply(await exchange(socket, call(build)));
    assert.equal(own.status, 0);
    assert.equal(JSON.parse(own.stdout).cniVersion, "1.1.0");
    const other = decodeReply(await exchange(socket, call("0123456789ab")));
    assert.deepEqual([other.status, other.legacy], [PROTOCOL.notServed, false]);
    assert.match(other.stderr, /build "0123456789ab", the daemon of build/);
    // Protocol 1's frame: "not served" in protocol 1's reply, which an old shim understands.
    const v1 = new Uint8Array([...u32(24), ...enc.encode("PPQ1"), ...new Uint8Array(20)]);
    const legacy = decodeReply(await exchange(socket, v1));
    assert.deepEqual([legacy.status, legacy.legacy], [PROTOCOL.notServed, true]);
    const body = call(build).subarray(4);
    const framed = (b: Uint8Array) => new Uint8Array([...u32(b.length), ...b]);
    const bad = [
      framed(patch(body, 0, enc.encode("NOPE"))),
      framed(body.subarray(0, 26)),
      framed(new Uint8Array([...body, 0])),
    ];
    for (const b of bad) {
      const res = decodeReply(await exchange(socket, b));
      assert.equal(res.status, PROTOCOL.notServed, res.stderr);
      assert(res.stderr !== "", "says why");
    }
    // Readiness: ready for its own build only.
    const probe = decodeReply(await exchange(socket, encodeProbe(build)));
    assert.equal(probe.status, 0);
    assert.deepEqual(JSON.parse(probe.stdout), {
      protocol: PROTOCOL.version,
      build,
      ready: true,
      draining: false,
      inFlight: 0,
      queued: 0,
    });
    const env = { [PROTOCOL.socketEnv]: socket };
    const ready = await client(bin, env, "", ["--ready"]);
    assert.equal(ready.code, 0, ready.stderr);
    assert.equal(JSON.parse(ready.stdout).build, build);

    // A shim of another build: its probe is refused, its calls fall back to per call.
    const otherBin = `${dir.path}/other-client`;
    await run("sh", `${ROOT}/scripts/build-client.sh`, otherBin, "0123456789ab");
    assert.equal((await client(otherBin, env, "", ["--ready"])).code, 1);
    const skew = await client(otherBin, { ...env, CNI_COMMAND: "VERSION" });
    assert.equal(skew.stdout, "fallback ran\n");
  },
});
