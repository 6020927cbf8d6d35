import assert from "node:assert/strict";
import {
  cHeader,
  decodeClientFrame,
  decodeReply,
  encodeCall,
  encodeProbe,
  encodeReply,
  PROTOCOL,
} from "./protocol.ts";

const call = {
  build: "abc",
  netns: 1n,
  mntns: 2n,
  target: { dev: 3n, ino: 4n },
  cwd: { dev: 5n, ino: 6n },
  env: { CNI_COMMAND: "ADD", PODPLEX_CWD: "/" },
  stdin: new TextEncoder().encode("{}"),
};

Deno.test("a call, a probe and a reply decode to what was encoded", () => {
  assert.deepEqual(decodeClientFrame(encodeCall(call).subarray(4)), { kind: "call", ...call });
  assert.deepEqual(decodeClientFrame(encodeProbe("abc").subarray(4)), {
    kind: "probe",
    build: "abc",
  });
  const reply = { status: -1, stdout: "ü", stderr: "why" };
  assert.deepEqual(decodeReply(encodeReply(reply).subarray(4)), { ...reply, legacy: false });
  assert.deepEqual(decodeReply(encodeReply(reply, true).subarray(4)), { ...reply, legacy: true });
});

Deno.test("a call keeps only the forwarded variables", () => {
  const frame = encodeCall({ ...call, env: { CNI_X: "1", HOME: "/root", PODPLEX_ARGV0: "a" } });
  const got = decodeClientFrame(frame.subarray(4));
  assert.equal(got.kind, "call");
  if (got.kind === "call") assert.deepEqual(got.env, { CNI_X: "1", PODPLEX_ARGV0: "a" });
});

Deno.test("a malformed frame is refused naming what is missing or extra", () => {
  const body = encodeCall(call).subarray(4);
  assert.throws(() => decodeClientFrame(body.subarray(0, 15)), /no room for the netns inode/);
  assert.throws(() => decodeClientFrame(new Uint8Array([...body, 7])), /1 trailing bytes/);
  assert.throws(() => decodeClientFrame(new TextEncoder().encode("HTTP")), /Bad frame magic/);
  assert.deepEqual(decodeClientFrame(new TextEncoder().encode("PPQ1....")), { kind: "legacy" });
});

Deno.test("the generated C header carries the protocol's values", () => {
  const h = cHeader();
  assert.match(h, new RegExp(`#define PP_CALL_MAGIC "${PROTOCOL.callMagic}"`));
  assert.match(h, /#define PP_NOT_SERVED \(-1\)/);
  assert.match(h, new RegExp(`#define PP_MAX_FRAME ${PROTOCOL.maxFrame}u`));
  assert.match(h, /#define PP_FORWARD_NAMES \{ "PODPLEX_ARGV0=", 0 \}/);
});
