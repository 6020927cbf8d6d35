import assert from "node:assert/strict";
import { checkConnection } from "./check.ts";
import { modelWorld, NAMESPACES, POD_NAMES, SECONDARY } from "./_testing.ts";
import { CASES, expected, type P, probeSpace } from "../../tests/_policy_cases.ts";

const PODS: P[] = NAMESPACES.flatMap((ns) => POD_NAMES.map((pod) => ({ ns, pod })));

for (const c of CASES) {
  Deno.test(`checkConnection() matches the truth table: ${c.name}`, () => {
    const world = modelWorld(c.policies);
    c.mutate?.(world);
    const find = (p: P) => world.pods.find((x) => x.namespace === p.ns && x.name === p.pod)!;
    const wrong: string[] = [];
    for (const net of ["cluster", "sec"] as const) {
      const want = expected(c, net);
      for (const s of PODS) {
        for (const d of PODS) {
          if (s === d) continue; // loopback never crosses an interface
          for (const [port, proto] of probeSpace(true)) {
            const r = checkConnection(
              world,
              find(s),
              find(d),
              port,
              proto,
              net === "sec" ? SECONDARY : undefined,
            );
            const got = typeof r === "string" ? r : r.allowed;
            if (got !== want(s, d, port, proto)) {
              wrong.push(`${net} ${s.ns}/${s.pod} -> ${d.ns}/${d.pod} ${port}/${proto}: ${got}`);
            }
          }
        }
      }
    }
    assert.deepEqual(wrong, []);
  });
}
