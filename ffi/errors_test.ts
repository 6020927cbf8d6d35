import assert from "node:assert/strict";
import { bindStats, setLibraryPaths } from "./_lib.ts";
import { errnoError, kernelError, NetlinkError, nlError } from "./errors.ts";

Deno.test("nlError() keeps libnl's code and text and maps NLE_NODEV to notfound", () => {
  const e = nlError('delete link "eth9"', -31);
  assert.ok(e instanceof NetlinkError);
  assert.equal(e.code, 31);
  assert.equal(e.kind, "notfound");
  assert.equal(e.op, 'delete link "eth9"');
  assert.match(e.message, /^Cannot delete link "eth9": \S/);
  assert.equal(nlError("x", -6).kind, "exists");
  assert.equal(nlError("x", -25).kind, "busy");
  assert.equal(nlError("x", -7).kind, "other");
});

Deno.test("kernelError() turns an errno into libnl's NLE code with strerror text", () => {
  const e = kernelError('add ipvlan "iv0"', -95, "Unknown device type");
  assert.equal(e.code, 10); // NLE_OPNOTSUPP
  assert.equal(e.errno, 95);
  assert.equal(e.kind, "notsupported");
  assert.equal(e.message, 'Cannot add ipvlan "iv0": Operation not supported (Unknown device type)');
  assert.equal(kernelError("x", 17).kind, "exists");
  assert.equal(kernelError("x", 19).code, 31); // ENODEV → NLE_NODEV
  assert.equal(kernelError("x", 3).kind, "notfound"); // ESRCH: no such route
  assert.equal(kernelError("x", 99).kind, "notfound"); // EADDRNOTAVAIL: no such address
  assert.equal(kernelError("x", 16).kind, "busy");
  assert.equal(kernelError("x", 22).kind, "other");
});

Deno.test("errnoError() keeps the errno as code", () => {
  const e = errnoError('open netns "/run/netns/x"', 2);
  assert.equal(e.code, 2);
  assert.equal(e.kind, "notfound");
  assert.equal(e.message, 'Cannot open netns "/run/netns/x": No such file or directory');
});

Deno.test("setLibraryPaths() is refused once a library is loaded", () => {
  kernelError("x", 1); // binds the error symbols
  assert.ok(bindStats().symbols > 0);
  assert.throws(() => setLibraryPaths({ nl: "/nowhere/libnl-3.so" }), /already loaded/);
});
