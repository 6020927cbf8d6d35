import assert from "node:assert/strict";
import { admitAndRun, CallScheduler, NotStarted } from "./gate.ts";
import type { CallFrame } from "./protocol.ts";

/** A call that records when it runs and finishes when released. */
function probe(log: string[], name: string) {
  let release!: () => void;
  const done = new Promise<void>((r) => release = r);
  return {
    release,
    fn: async () => {
      log.push(`+${name}`);
      await done;
      log.push(`-${name}`);
      return name;
    },
  };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("calls of different keys run at once up to the cap; one key runs in order", async () => {
  const s = new CallScheduler({ maxInFlight: 2, maxQueued: 10 });
  const log: string[] = [];
  const [a, a2, b, c] = ["a", "a2", "b", "c"].map((n) => probe(log, n));
  const runs = [
    s.run({ key: "A" }, a.fn),
    s.run({ key: "A" }, a2.fn),
    s.run({ key: "B" }, b.fn),
    s.run({ key: "C" }, c.fn),
  ];
  await tick();
  assert.deepEqual(log, ["+a", "+b"], "a2 waits for a; c waits for a slot");
  assert.equal(s.waiting, 2);
  a.release();
  await tick();
  assert.deepEqual(log.slice(2), ["-a", "+a2"], "a2 goes first: it arrived before c");
  b.release();
  await tick();
  assert.deepEqual(log.slice(4), ["-b", "+c"]);
  a2.release();
  c.release();
  assert.deepEqual(await Promise.all(runs), ["a", "a2", "b", "c"]);
  await s.drain();
});

Deno.test("an exclusive call waits for all, and nothing behind it overtakes it", async () => {
  const s = new CallScheduler({ maxInFlight: 4, maxQueued: 10 });
  const log: string[] = [];
  const [a, gc, b] = ["a", "gc", "b"].map((n) => probe(log, n));
  const runs = [
    s.run({ key: "A" }, a.fn),
    s.run({ exclusive: true }, gc.fn),
    s.run({ key: "B" }, b.fn),
  ];
  await tick();
  assert.deepEqual(log, ["+a"]);
  a.release();
  await tick();
  assert.deepEqual(log.slice(1), ["-a", "+gc"]);
  gc.release();
  await tick();
  assert.deepEqual(log.slice(3), ["-gc", "+b"]);
  b.release();
  await Promise.all(runs);
});

Deno.test("a full queue refuses a call at once; free calls need no slot", async () => {
  const s = new CallScheduler({ maxInFlight: 1, maxQueued: 1 });
  const log: string[] = [];
  const [a, b] = ["a", "b"].map((n) => probe(log, n));
  const ra = s.run({ key: "A" }, a.fn);
  const rb = s.run({ key: "B" }, b.fn);
  await assert.rejects(s.run({ key: "C" }, () => Promise.resolve("c")), NotStarted);
  assert.equal(await s.run({ free: true }, () => Promise.resolve("v")), "v");
  a.release();
  b.release();
  assert.deepEqual(await Promise.all([ra, rb]), ["a", "b"]);
});

const frame = (verb: string, id: string): CallFrame => ({
  kind: "call",
  build: "dev",
  netns: 1n,
  mntns: 1n,
  target: { dev: 0n, ino: 0n },
  cwd: { dev: 0n, ino: 0n },
  env: { CNI_COMMAND: verb, CNI_CONTAINERID: id },
  stdin: new Uint8Array(),
});
const codeOf = (stdout: string) => JSON.parse(stdout).code;

Deno.test("a stuck call's client gets 11 at its deadline and its signal aborts; one queued behind it never starts", async () => {
  const s = new CallScheduler({ maxInFlight: 1, maxQueued: 4 });
  let release!: () => void;
  const stuck = new Promise<void>((r) => release = r);
  const ran: string[] = [];
  let aborted = "";
  const a = admitAndRun(frame("ADD", "a"), s, async (signal) => {
    ran.push("a");
    signal.addEventListener("abort", () => aborted = String(signal.reason));
    await stuck;
    return { status: 0, stdout: "{}", stderr: "" };
  }, { deadlineMs: 60 });
  const b = admitAndRun(frame("ADD", "b"), s, () => {
    ran.push("b");
    return Promise.resolve({ status: 0, stdout: "{}", stderr: "" });
  }, { deadlineMs: 60 });
  const [ra, rb] = await Promise.all([a, b]);
  assert.equal(codeOf(ra.stdout), 11);
  assert.match(JSON.parse(ra.stdout).msg, /did not finish within 60 ms/);
  assert.match(aborted, /deadline of 60 ms/);
  assert.equal(codeOf(rb.stdout), 11);
  assert.match(JSON.parse(rb.stdout).msg, /was not started/);
  assert.equal(s.waiting, 0, "the late call left the queue");
  release();
  await s.drain();
  assert.deepEqual(ran, ["a"], "the call whose client was answered never ran");
});

Deno.test("a queued call whose client went away never starts", async () => {
  const s = new CallScheduler({ maxInFlight: 1, maxQueued: 4 });
  let release!: () => void;
  const held = new Promise<void>((r) => release = r);
  const ok = { status: 0, stdout: "", stderr: "" };
  const a = admitAndRun(frame("DEL", "a"), s, () => held.then(() => ok));
  const gone = new AbortController();
  let ran = false;
  const b = admitAndRun(frame("DEL", "b"), s, () => {
    ran = true;
    return Promise.resolve(ok);
  }, { clientGone: gone.signal });
  await tick();
  gone.abort();
  assert.match(JSON.parse((await b).stdout).msg, /not started: the client went away/);
  release();
  assert.deepEqual(await a, ok);
  await s.drain();
  assert.equal(ran, false);
});
