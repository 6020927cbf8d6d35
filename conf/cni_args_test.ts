import { deepStrictEqual as assertEquals, match } from "node:assert/strict";
import { CniError } from "./errors.ts";
import { parseArgBool, parseCniArgs, validateCniArgs } from "./cni_args.ts";

function errorOf(fn: () => unknown): CniError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CniError) return e;
    throw e;
  }
  throw new Error("expected a CniError");
}

Deno.test("parseCniArgs() splits K=V pairs in order", () => {
  const args = parseCniArgs("IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.0.0.5");
  assertEquals([...args], [["IgnoreUnknown", "1"], ["K8S_POD_NAME", "web"], ["IP", "10.0.0.5"]]);
});

Deno.test("parseCniArgs() gives an empty map for an empty or missing string", () => {
  assertEquals(parseCniArgs("").size, 0);
  assertEquals(parseCniArgs(undefined).size, 0);
});

Deno.test("parseCniArgs() keeps an empty value", () => {
  assertEquals(parseCniArgs("A=").get("A"), "");
});

Deno.test("parseCniArgs() rejects a pair without = with code 4 naming it", () => {
  const e = errorOf(() => parseCniArgs("A=1;broken"));
  assertEquals(e.code, 4);
  match(e.message, /"broken"/);
});

Deno.test("parseCniArgs() rejects a pair with two = with code 4 naming it", () => {
  const e = errorOf(() => parseCniArgs("A=1=2"));
  assertEquals(e.code, 4);
  match(e.message, /"A=1=2"/);
});

Deno.test("parseCniArgs() rejects a trailing ; as Go does", () => {
  assertEquals(errorOf(() => parseCniArgs("A=1;")).code, 4);
});

Deno.test("validateCniArgs() accepts the well-known keys", () => {
  const args = parseCniArgs("K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u;MAC=aa");
  assertEquals(validateCniArgs(args), args);
});

Deno.test("validateCniArgs() rejects unknown keys with code 4 naming them", () => {
  const e = errorOf(() => validateCniArgs(parseCniArgs("K8S_POD_NAME=p;FOO=bar")));
  assertEquals(e.code, 4);
  match(e.message, /"FOO=bar"/);
});

Deno.test("validateCniArgs() ignores unknown keys with IgnoreUnknown=1 or true", () => {
  for (const v of ["1", "true", "TRUE"]) {
    const args = parseCniArgs(`IgnoreUnknown=${v};FOO=bar`);
    assertEquals(validateCniArgs(args).get("FOO"), "bar");
  }
});

Deno.test("validateCniArgs() still rejects unknown keys with IgnoreUnknown=0", () => {
  assertEquals(errorOf(() => validateCniArgs(parseCniArgs("IgnoreUnknown=0;FOO=bar"))).code, 4);
});

Deno.test("validateCniArgs() honours a custom list of known keys", () => {
  assertEquals(validateCniArgs(parseCniArgs("FOO=1"), ["FOO"]).get("FOO"), "1");
  assertEquals(errorOf(() => validateCniArgs(parseCniArgs("IP=1"), ["FOO"])).code, 4);
});

Deno.test("parseArgBool() rejects values other than 1/true/0/false with code 4", () => {
  assertEquals(parseArgBool("X", "False"), false);
  assertEquals(parseArgBool("X", "1"), true);
  const e = errorOf(() => parseArgBool("IgnoreUnknown", "yes"));
  assertEquals(e.code, 4);
  match(e.message, /"IgnoreUnknown=yes"/);
});
