import assert from "node:assert/strict";
import { formatSelector, matches } from "./selector.ts";
import type { LabelSelector } from "./types.ts";

const sel = (s: Partial<LabelSelector>): LabelSelector => ({
  matchLabels: {},
  matchExpressions: [],
  ...s,
});

Deno.test("matches() with an empty selector selects every label set, also none", () => {
  assert.ok(matches(sel({}), {}));
  assert.ok(matches(sel({}), { a: "1" }));
});

Deno.test("matches() needs every matchLabels pair", () => {
  const s = sel({ matchLabels: { app: "web", tier: "fe" } });
  assert.ok(matches(s, { app: "web", tier: "fe", x: "y" }));
  assert.ok(!matches(s, { app: "web" }));
  assert.ok(!matches(s, { app: "web", tier: "be" }));
});

Deno.test("matches() evaluates In, NotIn, Exists and DoesNotExist as apimachinery does", () => {
  const e = (operator: "In" | "NotIn" | "Exists" | "DoesNotExist", values: string[] = []) =>
    sel({ matchExpressions: [{ key: "k", operator, values }] });
  assert.ok(matches(e("In", ["a", "b"]), { k: "b" }));
  assert.ok(!matches(e("In", ["a", "b"]), { k: "c" }));
  assert.ok(!matches(e("In", ["a"]), {}));
  assert.ok(matches(e("NotIn", ["a"]), { k: "b" }));
  assert.ok(matches(e("NotIn", ["a"]), {}), "a missing key is not in the list");
  assert.ok(!matches(e("NotIn", ["a"]), { k: "a" }));
  assert.ok(matches(e("Exists"), { k: "" }));
  assert.ok(!matches(e("Exists"), { j: "1" }));
  assert.ok(matches(e("DoesNotExist"), {}));
  assert.ok(!matches(e("DoesNotExist"), { k: "1" }));
});

Deno.test("matches() ANDs matchLabels and matchExpressions", () => {
  const s = sel({
    matchLabels: { app: "web" },
    matchExpressions: [{ key: "env", operator: "NotIn", values: ["prod"] }],
  });
  assert.ok(matches(s, { app: "web", env: "dev" }));
  assert.ok(!matches(s, { app: "web", env: "prod" }));
  assert.ok(!matches(s, { app: "db", env: "dev" }));
});

Deno.test("matches() does not see inherited properties as labels", () => {
  const s = sel({ matchExpressions: [{ key: "toString", operator: "Exists", values: [] }] });
  assert.ok(!matches(s, {}));
});

Deno.test("formatSelector() prints as kubectl does", () => {
  assert.deepStrictEqual(formatSelector(sel({})), "{}");
  assert.deepStrictEqual(
    formatSelector(sel({
      matchLabels: { a: "1" },
      matchExpressions: [
        { key: "b", operator: "In", values: ["x", "y"] },
        { key: "c", operator: "DoesNotExist", values: [] },
      ],
    })),
    "a=1,b in (x,y),!c",
  );
});
