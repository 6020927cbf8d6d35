// The hand-written checks against the zod schemas they replaced (kept here as the oracle):
// same verdict, same first issue (code and path), same output with the same key order.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import fc from "fast-check";
import * as z from "zod/mini";
import { checkConfListFields, type Checked, checkNetConf } from "./_netconf_check.ts";

const strings = z.array(z.string());
const looseBool = z.union([z.boolean(), z.string().check(z.regex(/^(true|false)$/i))]);

const netConfSchema = z.looseObject({
  cniVersion: z.optional(z.string()),
  cniVersions: z.optional(strings),
  name: z.optional(z.string()),
  type: z.string().check(z.minLength(1)),
  disableCheck: z.optional(looseBool),
  disableGC: z.optional(looseBool),
  capabilities: z.optional(z.record(z.string(), z.boolean())),
  ipam: z.optional(z.looseObject({ type: z.optional(z.string()) })),
  dns: z.optional(z.looseObject({
    nameservers: z.optional(strings),
    domain: z.optional(z.string()),
    search: z.optional(strings),
    options: z.optional(strings),
  })),
  args: z.optional(z.record(z.string(), z.unknown())),
  runtimeConfig: z.optional(z.record(z.string(), z.unknown())),
  prevResult: z.optional(z.record(z.string(), z.unknown())),
  ipMasq: z.optional(z.boolean()),
});

const confListSchema = z.looseObject({
  cniVersion: z.optional(z.string()),
  cniVersions: z.optional(strings),
  name: z.string(),
  disableCheck: z.optional(looseBool),
  disableGC: z.optional(looseBool),
  plugins: z.array(z.record(z.string(), z.unknown())).check(z.minLength(1)),
});

/** What both sides are compared on: JSON text keeps the key order. */
function verdict(r: Checked<unknown>): string {
  return r.ok ? `ok ${JSON.stringify(r.value)}` : `${r.issue.code} ${JSON.stringify(r.issue.path)}`;
}

function zodVerdict(schema: z.ZodMiniType<unknown>, v: unknown): string {
  const r = schema.safeParse(v);
  if (r.success) return `ok ${JSON.stringify(r.data)}`;
  const issue = r.error.issues[0];
  return `${issue.code} ${JSON.stringify(issue.path)}`;
}

const leaf = fc.oneof(
  fc.string({ maxLength: 4 }),
  fc.constantFrom("true", "FALSE", "yes", ""),
  fc.boolean(),
  fc.integer(),
  fc.constant(null),
);
const value = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: "small" },
    leaf,
    fc.array(tie("v"), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom("type", "a", "nameservers", "search"), tie("v"), {
      maxKeys: 3,
    }),
  ),
})).v;

const NET_KEYS = [
  "cniVersion",
  "cniVersions",
  "name",
  "type",
  "disableCheck",
  "disableGC",
  "capabilities",
  "ipam",
  "dns",
  "args",
  "runtimeConfig",
  "prevResult",
  "ipMasq",
  "plugins",
  "zzz",
];

const confLike = fc.dictionary(fc.constantFrom(...NET_KEYS), value, { maxKeys: 6 });
const validish = fc.record({
  type: fc.constantFrom("bridge", ""),
  name: fc.constant("n"),
  plugins: fc.array(fc.oneof(fc.constant({ type: "x" }), value), { maxLength: 2 }),
}).chain((base) => confLike.map((extra) => ({ ...extra, ...base })));

Deno.test("checkNetConf() gives zod's verdict, first issue and output on random confs", () => {
  fc.assert(
    fc.property(fc.oneof(confLike, validish, value), (v) => {
      assertEquals(verdict(checkNetConf(v)), zodVerdict(netConfSchema, v));
    }),
    { numRuns: 3000 },
  );
});

Deno.test("checkConfListFields() gives zod's verdict, first issue and output on random lists", () => {
  fc.assert(
    fc.property(fc.oneof(confLike, validish, value), (v) => {
      assertEquals(verdict(checkConfListFields(v)), zodVerdict(confListSchema, v));
    }),
    { numRuns: 3000 },
  );
});

Deno.test("checkNetConf() names the field and the issue of known bad confs", () => {
  const cases: Array<[unknown, string]> = [
    [{}, `invalid_type ["type"]`],
    [{ type: "" }, `too_small ["type"]`],
    [{ type: "x", disableCheck: "yes" }, `invalid_format ["disableCheck"]`],
    [{ type: "x", disableCheck: 3 }, `invalid_union ["disableCheck"]`],
    [{ type: "x", capabilities: { a: 1 } }, `invalid_type ["capabilities","a"]`],
    [{ type: "x", dns: { search: [1] } }, `invalid_type ["dns","search",0]`],
    [{ type: "x", ipam: [] }, `invalid_type ["ipam"]`],
  ];
  for (const [v, want] of cases) assertEquals(verdict(checkNetConf(v)), want);
});

Deno.test("checkNetConf() copies known objects and keeps unknown keys after them", () => {
  const input = { zzz: 1, ipam: { r: [1], type: "h" }, type: "x" };
  const r = checkNetConf(input);
  if (!r.ok) throw new Error("expected a valid conf");
  assertEquals(JSON.stringify(r.value), `{"type":"x","ipam":{"type":"h","r":[1]},"zzz":1}`);
  assertEquals(r.value.ipam !== input.ipam, true);
});
