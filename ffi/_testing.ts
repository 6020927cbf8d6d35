/**
 * Test helpers for ffi/ tests (not used by production code).
 *
 * @module
 */
import assert from "node:assert/strict";
import { NetlinkError, type NetlinkErrorKind } from "./errors.ts";

/** Runs `fn`, asserts it throws an instance of `cls`, and returns the error. */
export function catchError<E extends Error>(
  fn: () => unknown,
  cls: new (...args: never[]) => E,
): E {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    return e;
  }
  assert.fail(`expected ${cls.name} to be thrown`);
}

/** Asserts `fn` throws a NetlinkError of `kind` and returns it. */
export function throwsKind(fn: () => unknown, kind: NetlinkErrorKind): NetlinkError {
  const e = catchError(fn, NetlinkError);
  assert.equal(e.kind, kind, `expected kind ${kind}: ${e.message}`);
  return e;
}
