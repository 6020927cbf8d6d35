import assert from "node:assert/strict";
import { mnp, modelWorld, np } from "../../meta/policy/_testing.ts";
import { renderPodTable } from "../../meta/policy/render.ts";
import { resolvePod } from "../../meta/policy/resolve.ts";
import type { Policy } from "../../meta/policy/types.ts";
import { tableUpdate } from "./incremental.ts";

const table = (policies: Policy[], pod = 0) => {
  const w = modelWorld(policies);
  return renderPodTable(resolvePod(w, w.pods[pod]));
};
const fromY = np("x", "from-y", {
  podSelector: {},
  ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: "y" } } }], ports: [{ port: 80 }] }],
});
const deny = np("x", "deny", { podSelector: {}, policyTypes: ["Ingress"] });
const egress = np("x", "out", { podSelector: {}, egress: [{ to: [{ podSelector: {} }] }] });

Deno.test("tableUpdate: a policy added adds its set and re-adds the chain's rules", () => {
  const u = tableUpdate(table([deny]), table([deny, fromY]))!;
  assert.match(
    u,
    /^add set inet podplex in_eth0_0_v4 \{ type ipv4_addr; elements = \{ 10\.164\.0\.13, /,
  );
  assert.match(u, /\nflush chain inet podplex in_eth0\n/);
  assert.match(u, /\nadd rule inet podplex in_eth0 drop\n$/);
  assert.doesNotMatch(u, /delete table|chain ingress/);
});

Deno.test("tableUpdate: a policy removed flushes and deletes what it drew", () => {
  const u = tableUpdate(table([deny, fromY, egress]), table([deny]))!;
  assert.match(u, /flush chain inet podplex out_eth0\n/);
  assert.match(u, /flush chain inet podplex egress\nadd rule inet podplex egress ct state/);
  assert.match(u, /delete chain inet podplex out_eth0\n/);
  assert.match(u, /delete set inet podplex in_eth0_0_v4\n/);
  assert.ok(u.indexOf("delete chain") > u.lastIndexOf("add rule"), "deleted after the jumps went");
});

Deno.test("tableUpdate: none for a removal, a new table, or the same table", () => {
  assert.equal(tableUpdate(table([deny]), table([])), undefined);
  assert.equal(tableUpdate(table([]), table([deny])), undefined);
  assert.equal(tableUpdate(table([deny]), table([deny])), undefined);
  // A MultiNetworkPolicy: a new interface chain and its jump.
  const sec = mnp("x", "sec", "default/sec", { podSelector: {}, policyTypes: ["Ingress"] });
  const u = tableUpdate(table([deny]), table([deny, sec]))!;
  assert.match(u, /add chain inet podplex in_net1\n/);
  assert.match(u, /add rule inet podplex ingress iifname "net1" jump in_net1/);
});
