import assert from "node:assert/strict";
import { CallGate } from "./serve_gate.ts";

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

Deno.test("shared calls with the same key run together, up to the limit", async () => {
  const gate = new CallGate(2);
  const log: string[] = [];
  const [a, b, c] = ["a", "b", "c"].map((n) => probe(log, n));
  const runs = [a, b, c].map((p) => gate.run({ shared: true, key: "/x" }, p.fn));
  await tick();
  assert.deepEqual(log, ["+a", "+b"]);
  assert.equal(gate.running, 2);
  a.release();
  await tick();
  assert.deepEqual(log, ["+a", "+b", "-a", "+c"]);
  b.release();
  c.release();
  assert.deepEqual(await Promise.all(runs), ["a", "b", "c"]);
  await gate.drain();
  assert.equal(gate.running, 0);
});

Deno.test("an exclusive call waits for running shared calls, and later ones wait for it", async () => {
  const gate = new CallGate(8);
  const log: string[] = [];
  const [d1, add, d2] = ["d1", "add", "d2"].map((n) => probe(log, n));
  const runs = [
    gate.run({ shared: true }, d1.fn),
    gate.run({ shared: false }, add.fn),
    gate.run({ shared: true }, d2.fn),
  ];
  await tick();
  assert.deepEqual(log, ["+d1"]);
  d1.release();
  await tick();
  assert.deepEqual(log, ["+d1", "-d1", "+add"]);
  add.release();
  await tick();
  assert.deepEqual(log, ["+d1", "-d1", "+add", "-add", "+d2"]);
  d2.release();
  await Promise.all(runs);
});

Deno.test("shared calls with different keys do not overlap", async () => {
  const gate = new CallGate(8);
  const log: string[] = [];
  const [a, b] = ["a", "b"].map((n) => probe(log, n));
  const runs = [
    gate.run({ shared: true, key: "/x" }, a.fn),
    gate.run({ shared: true, key: "/y" }, b.fn),
  ];
  await tick();
  assert.deepEqual(log, ["+a"]);
  a.release();
  await tick();
  assert.deepEqual(log, ["+a", "-a", "+b"]);
  b.release();
  await Promise.all(runs);
});

Deno.test("a failing call releases its place and passes its error on", async () => {
  const gate = new CallGate(1);
  const failed = gate.run({ shared: false }, () => Promise.reject(new Error("boom")));
  const next = gate.run({ shared: false }, () => Promise.resolve(7));
  await assert.rejects(failed, /boom/);
  assert.equal(await next, 7);
  await gate.drain();
  assert.throws(() => new CallGate(0), RangeError);
});
