/**
 * The ADD's first table in the kernel (meta/policy/enforce.ts): in a netns without a podplex
 * table it is created (the cheaper transaction), in one that holds a stale table (a second
 * ADD into the netns, a table left by hand) the stale one is replaced whole; the created
 * table is the one the replacing script makes. Real netns `ppq-ft`, libnftables via FFI.
 *
 * Needs root and libnftables (skipped without them).
 *
 * @module
 */
import { haveLibnftables, isRoot } from "./testutils.ts";
import assert from "node:assert/strict";
import { runNftIn } from "../ffi/mod.ts";
import { enforceOnAdd } from "../meta/policy/enforce.ts";
import { createOnly, renderPodTable } from "../meta/policy/render.ts";
import { ffiApplier } from "../meta/policy/source.ts";
import { modelWorld, np } from "../meta/policy/_testing.ts";
import { resolvePod } from "../meta/policy/resolve.ts";
import type { Logger } from "../meta/log.ts";

const NS = "ppq-ft";
const PATH = `/run/netns/${NS}`;
const canRun = isRoot && haveLibnftables;

const quiet: Logger = {
  error() {},
  warning() {},
  info() {},
  debug() {},
  with: () => quiet,
};

async function ip(...args: string[]) {
  await new Deno.Command("ip", { args, stderr: "null" }).output();
}

/** The table as the kernel lists it, without handles. */
const listed = () => runNftIn(PATH, "list table inet podplex");

Deno.test({
  name: "the ADD creates a pod's first table, and replaces a stale one whole",
  ignore: !canRun,
  async fn() {
    const world = modelWorld([np("x", "deny", { podSelector: {}, policyTypes: ["Ingress"] })]);
    const pod = world.pods[0];
    const input = { source: { worldFor: () => Promise.resolve(world) }, pod, netns: PATH };
    const script = renderPodTable(resolvePod(world, pod));
    await ip("netns", "del", NS);
    await ip("netns", "add", NS);
    try {
      // What the replacing script makes, for comparison.
      runNftIn(PATH, script);
      const want = listed();
      runNftIn(PATH, "delete table inet podplex");

      const seen: string[] = [];
      const apply = (netns: string, s: string) => (seen.push(s), ffiApplier(netns, s));
      await enforceOnAdd({ ...input, apply, log: quiet });
      assert.equal(seen.length, 1);
      assert.ok(seen[0].startsWith("create table"), seen[0]);
      assert.equal(listed(), want);
      assert.throws(() => runNftIn(PATH, createOnly(script)!), /File exists|exists/);

      // A stale table with a chain and a set the pod's rules do not have.
      runNftIn(
        PATH,
        "table inet podplex\ndelete table inet podplex\ntable inet podplex {\n" +
          "  set stale { type ipv4_addr; elements = { 10.9.9.9 } }\n  chain junk {\n  }\n}\n",
      );
      seen.length = 0;
      await enforceOnAdd({ ...input, apply, log: quiet });
      assert.equal(seen.length, 2, "the create refused, then the replacement");
      assert.equal(listed(), want, "nothing of the stale table is left");
    } finally {
      await ip("netns", "del", NS);
    }
  },
});
