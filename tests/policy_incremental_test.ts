/**
 * The policy controller's table updates (controllers/policy/incremental.ts) against the
 * kernel, as root: for each pod of the e2e model (x, y, z × a, b, c) and each step from one
 * case of tests/_policy_cases.ts to the next (the cases in order, then back to the first),
 * the old table is written whole in netns `ppf-inc-old`, then the update; the new table is
 * written whole in `ppf-inc-new`; both tables, as `nft -j` lists them (handles dropped, set
 * elements sorted), must be the same. So an update leaves exactly the table a whole write
 * leaves, for policies coming, going and changing.
 */
import assert from "node:assert/strict";
import { runNftIn } from "../ffi/mod.ts";
import { modelWorld } from "../meta/policy/_testing.ts";
import { renderPodTable } from "../meta/policy/render.ts";
import { resolvePod } from "../meta/policy/resolve.ts";
import { tableUpdate } from "../controllers/policy/incremental.ts";
import { CASES, type PolicyCase } from "./_policy_cases.ts";
import { isRoot, run, tryRun } from "./testutils.ts";

const OLD = "ppf-inc-old";
const NEW = "ppf-inc-new";

function tables(c: PolicyCase): string[] {
  const w = modelWorld(c.policies);
  c.mutate?.(w);
  return w.pods.map((p) => renderPodTable(resolvePod(w, p)));
}

/** The table as nft lists it, in a form that does not depend on how it was made. */
async function listing(ns: string): Promise<string> {
  const out = await run("ip", "netns", "exec", ns, "nft", "-j", "list", "table", "inet", "podplex");
  const items = (JSON.parse(out).nftables as Record<string, Record<string, unknown>>[])
    .filter((o) => !("metainfo" in o));
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === "object") {
      return Object.fromEntries(
        Object.entries(v).filter(([k]) => k !== "handle").map(([k, x]) => [k, strip(x)]),
      );
    }
    return v;
  };
  const norm = items.map((o) => {
    const s = strip(o) as Record<string, Record<string, unknown>>;
    if (s.set?.elem) s.set.elem = (s.set.elem as unknown[]).map(String).sort();
    return JSON.stringify(s);
  });
  // Sets and chains by name; rules keep their order within each chain.
  const chainOf = (x: string) => (JSON.parse(x).rule.chain as string);
  const rules = norm.filter((x) => x.startsWith('{"rule"'))
    .map((x, i) => ({ x, i }))
    .sort((a, b) => chainOf(a.x).localeCompare(chainOf(b.x)) || a.i - b.i)
    .map(({ x }) => x);
  return [...norm.filter((x) => !x.startsWith('{"rule"')).sort(), ...rules].join("\n");
}

Deno.test({
  name: "a table update leaves the table a whole write leaves (every case step, every pod)",
  ignore: !isRoot,
  async fn() {
    for (const ns of [OLD, NEW]) {
      await tryRun("ip", "netns", "del", ns);
      await run("ip", "netns", "add", ns);
    }
    try {
      const steps = [...CASES.slice(1), CASES[0]];
      let before = tables(CASES[0]);
      let updates = 0;
      for (const c of steps) {
        const after = tables(c);
        for (let i = 0; i < after.length; i++) {
          const u = tableUpdate(before[i], after[i]);
          if (!u) continue;
          runNftIn(`/run/netns/${OLD}`, before[i]);
          runNftIn(`/run/netns/${OLD}`, u);
          runNftIn(`/run/netns/${NEW}`, after[i]);
          assert.equal(
            await listing(OLD),
            await listing(NEW),
            `${c.name}, pod ${i}: the update\n${u}`,
          );
          updates++;
        }
        before = after;
      }
      assert.ok(updates > 30, `only ${updates} steps were updates`);
    } finally {
      for (const ns of [OLD, NEW]) await tryRun("ip", "netns", "del", ns);
    }
  },
});
