import assert from "node:assert/strict";
import { systemClock } from "./controller.ts";
import { ControllerMetrics } from "./metrics.ts";
import { FakeClock } from "./testing.ts";

Deno.test("FakeClock fires after/every timers in time order and only when advanced", async () => {
  const clock = new FakeClock(0);
  const fired: string[] = [];
  clock.after(30, () => fired.push(`after@${clock.now().getTime()}`));
  const stop = clock.every(20, () => fired.push(`every@${clock.now().getTime()}`));
  await clock.advance(10);
  assert.deepEqual(fired, []);
  await clock.advance(50);
  assert.deepEqual(fired, ["every@20", "after@30", "every@40", "every@60"]);
  stop();
  await clock.advance(100);
  assert.equal(fired.length, 4);
  assert.equal(clock.pending, 0);
});

Deno.test("FakeClock.sleep() resolves when advanced past it or aborted", async () => {
  const clock = new FakeClock(0);
  let woke = false;
  const p = clock.sleep(100).then(() => woke = true);
  await clock.advance(99);
  assert.equal(woke, false);
  await clock.advance(1);
  await p;
  assert.equal(woke, true);
  const ctl = new AbortController();
  const q = clock.sleep(1e9, ctl.signal);
  ctl.abort();
  await q;
});

Deno.test("systemClock.sleep() returns at once on an aborted signal", async () => {
  const ctl = new AbortController();
  ctl.abort();
  await systemClock.sleep(60_000, ctl.signal);
  const cancel = systemClock.every(60_000, () => {});
  cancel();
});

Deno.test("ControllerMetrics renders families with escaped labels and refuses a duplicate", () => {
  const m = new ControllerMetrics();
  assert.equal(m.render(), "");
  let n = 1;
  m.register({
    name: "podplex_x_total",
    help: "Xs.",
    type: "counter",
    read: () => [{ labels: { net: 'a"b' }, value: n }],
  });
  n = 2;
  assert.equal(
    m.render(),
    '# HELP podplex_x_total Xs.\n# TYPE podplex_x_total counter\npodplex_x_total{net="a\\"b"} 2\n',
  );
  assert.throws(
    () => m.register({ name: "podplex_x_total", help: "", type: "gauge", read: () => [] }),
    /"podplex_x_total" is registered already/,
  );
});
