import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { CONTENDERS } from "./_fixture.ts";
import type { BenchResults } from "./_report.ts";
import type { BurstSamples, PodSamples } from "./_scenarios.ts";
import { formatGoals, goals, noise } from "./_goals.ts";

/** Samples of one contender: every ADD takes `add` ms, every DEL `del` (± `jitter`). */
function samples(add: number, del: number, jitter = 0): BurstSamples {
  const row = (v: number) => [v - jitter, v, v, v, v + jitter * 3];
  const s: PodSamples = {
    add: row(add),
    del: row(del),
    addRssKb: row(30 * 1024),
    delRssKb: row(30 * 1024),
    addCpuMs: row(add),
    delCpuMs: row(del),
    addDaemonCpuMs: row(0),
    delDaemonCpuMs: row(0),
  };
  return { ...s, addMakespan: row(add * 5), delMakespan: row(del * 5) };
}

function results(thickAdd: number, jitter = 0): BenchResults {
  const scenario = (n: number) => ({
    attachments: n,
    contenders: Object.fromEntries(CONTENDERS.map((c) => {
      if (c === "thick") return [c, samples(thickAdd, 10, jitter)];
      if (c === "floor") return [c, samples(5, 8)];
      return [c, samples(20 * n, 20 * n)];
    })) as Record<(typeof CONTENDERS)[number], BurstSamples>,
  });
  return {
    date: "2026-12-07T00:00:00Z",
    machine: { cpus: "2" },
    build: { kind: "test", entry: "main.js", bytes: 1 },
    options: { rounds: 1, pods: 5, sizes: [1, 3], quick: true },
    seconds: 1,
    sequential: [scenario(1), scenario(3)],
    burst: [scenario(1), scenario(3)],
  };
}

Deno.test("goals() compares each figure with its target", () => {
  // thick 1 att: (6 + 10) / (20 + 20) = 0.4 <= 0.75; DEL 10 - floor 8 = 2 <= 3.
  const list = goals({ main: results(6), load: { before: [0.1], after: [0.2] } });
  const by = (f: string) => list.find((g) => g.figure.startsWith(f))!;
  assertEquals(by("thick ADD+DEL / reference, 1 att").value, 0.4);
  assert(by("thick DEL of 1 att").value <= by("thick DEL of 1 att").target);
  // per call = the reference here: 1.0x at 1 att (met), 1.0x at 3 att (met, <= 1.0).
  assertEquals(by("per call ADD+DEL / reference, 3 att").value, 1);
  // thick 3 att: (6 + 10) / (60 + 60) = 0.13 <= 0.33.
  assert(by("thick ADD+DEL / reference, 3 att").value < 0.33);
});

Deno.test("formatGoals() says NO for a missed target and counts the met ones", () => {
  const text = formatGoals({ main: results(40), load: { before: [1], after: [2] } });
  // thick 1 att: (40 + 10) / 40 = 1.25 > 0.75.
  assertMatch(text, /thick ADD\+DEL \/ reference, 1 att\s+1\.25x\s+<= 0\.75x\s+NO/);
  assertMatch(text, /Issue 25 targets: \d+ of \d+ met/);
  assertMatch(text, /load average 1\.00 before, 2\.00 after/);
});

Deno.test("formatGoals() warns when the run is too noisy to judge", () => {
  const quiet = formatGoals({ main: results(6), load: { before: [], after: [] } });
  assert(!quiet.includes("WARNING"));
  const loud = results(6, 10);
  assert(noise(loud).spread > 1.5);
  assertMatch(formatGoals({ main: loud, load: { before: [], after: [] } }), /WARNING: too noisy/);
});
