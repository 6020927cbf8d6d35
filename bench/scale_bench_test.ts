import assert from "node:assert/strict";
import { slopePerThousand } from "./scale_bench.ts";

Deno.test("slopePerThousand() gives MiB per 1,000 cycles, the first step left out as warm-up", () => {
  // 1 MiB per 1,000 cycles after a warm-up jump that must not count.
  const samples: [number, number][] = [[0, 10], [1000, 30], [2000, 31], [3000, 32], [4000, 33]];
  assert.ok(Math.abs(slopePerThousand(samples) - 1) < 1e-9);
  assert.equal(slopePerThousand([[0, 10], [1000, 12], [2000, 12], [3000, 12]]), 0);
  assert.ok(Number.isNaN(slopePerThousand([[0, 10], [1000, 12]])));
});
