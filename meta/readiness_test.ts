import assert from "node:assert/strict";
import { CniError } from "../conf/errors.ts";
import { awaitReadiness } from "./readiness.ts";

const SHORT = { firstMs: 10, maxStepMs: 80, budgetMs: 400 };

Deno.test("awaitReadiness() answers code 11 naming the file when it never appears", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ppn-ready" });
  try {
    const t0 = performance.now();
    await assert.rejects(
      () => awaitReadiness(`${dir}/flannel-ready`, SHORT),
      (e) => e instanceof CniError && e.code === 11 && e.message.includes(`${dir}/flannel-ready`),
    );
    assert.ok(performance.now() - t0 >= SHORT.budgetMs, "it waited the whole budget first");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("awaitReadiness() returns once the file appears during the wait", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ppn-ready" });
  try {
    const file = `${dir}/ready`;
    const appear = new Promise((r) => setTimeout(r, 150)).then(() => Deno.writeTextFile(file, ""));
    await awaitReadiness(file, SHORT);
    await appear;
    await awaitReadiness(undefined, SHORT); // no file configured: no wait
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
