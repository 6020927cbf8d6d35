import assert from "node:assert/strict";
import { admitAndRun, type ServeRequest } from "./serve.ts";
import { CallGate } from "./serve_gate.ts";

const req = (verb: string): ServeRequest => ({
  kind: "call",
  build: "dev",
  netns: 1n,
  mntns: 1n,
  target: { dev: 0n, ino: 0n },
  cwd: { dev: 0n, ino: 0n },
  env: { CNI_COMMAND: verb, CNI_CONTAINERID: `pp${verb}` },
  stdin: new Uint8Array(),
});

const codeOf = (stdout: string) => JSON.parse(stdout).code;

Deno.test("a stuck call's client gets 11 at its deadline; a call queued behind it is never started", async () => {
  const gate = new CallGate();
  let release!: () => void;
  const stuck = new Promise<void>((r) => release = r);
  const ran: string[] = [];
  const a = admitAndRun(req("ADD"), gate, async () => {
    ran.push("a");
    await stuck;
    return { status: 0, stdout: "{}", stderr: "" };
  }, 60);
  const b = admitAndRun(req("ADD"), gate, () => {
    ran.push("b");
    return Promise.resolve({ status: 0, stdout: "{}", stderr: "" });
  }, 60);
  const [ra, rb] = await Promise.all([a, b]);
  assert.equal(codeOf(ra.stdout), 11);
  assert.match(JSON.parse(ra.stdout).msg, /did not finish within 60 ms/);
  assert.equal(codeOf(rb.stdout), 11);
  assert.match(JSON.parse(rb.stdout).msg, /was not started/);
  release();
  await gate.drain();
  assert.deepEqual(ran, ["a"], "the call whose client was answered never ran");
});

Deno.test("a call that ends before its deadline gets its own answer", async () => {
  const gate = new CallGate();
  const res = await admitAndRun(
    req("DEL"),
    gate,
    () => Promise.resolve({ status: 0, stdout: "", stderr: "" }),
    1000,
  );
  assert.deepEqual(res, { status: 0, stdout: "", stderr: "" });
});
