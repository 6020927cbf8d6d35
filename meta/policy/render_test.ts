import assert from "node:assert/strict";
import { createOnly, renderPodTable } from "./render.ts";
import { resolvePod } from "./resolve.ts";
import { mnp, modelWorld, np, SECONDARY } from "./_testing.ts";

const xa = (policies: Parameters<typeof modelWorld>[0]) => {
  const w = modelWorld(policies);
  return renderPodTable(resolvePod(w, w.pods[0]));
};

Deno.test("renderPodTable() of a pod no policy selects only removes the table", () => {
  assert.equal(xa([]), "table inet podplex\ndelete table inet podplex\n");
});

Deno.test("renderPodTable() draws a chain per isolated interface with node, sets, ports, drop", () => {
  const s = xa([np("x", "p", {
    podSelector: { matchLabels: { pod: "a" } },
    ingress: [{
      from: [{ namespaceSelector: { matchLabels: { ns: "y" } } }],
      ports: [{ port: 80 }],
    }],
  })]);
  assert.ok(s.startsWith("table inet podplex\ndelete table inet podplex\ntable inet podplex {"));
  assert.match(
    s,
    /set in_eth0_0_v4 \{ type ipv4_addr; elements = \{ 10\.164\.0\.13, 10\.164\.0\.14, 10\.164\.0\.15 \} \}/,
  );
  assert.match(s, /chain in_eth0 \{\n {4}ip saddr \{ 10\.164\.0\.1 \} accept comment "the node"\n/);
  assert.match(
    s,
    /ip saddr @in_eth0_0_v4 meta l4proto tcp th dport 80 accept comment "NetworkPolicy x\/p ingress\[0\]"/,
  );
  assert.match(s, /drop\n {2}\}/);
  assert.match(
    s,
    /hook input priority filter; policy accept;\n {4}ct state established,related accept\n {4}iifname "eth0" jump in_eth0\n/,
  );
  assert.ok(!s.includes("net1"), "the secondary network is not touched by a NetworkPolicy");
  assert.ok(!s.includes("chain out_"), "egress is not isolated");
});

Deno.test("renderPodTable() puts a MultiNetworkPolicy on its network's interface only, without the node", () => {
  const s = xa([mnp("x", "p", SECONDARY, {
    podSelector: {},
    policyTypes: ["Egress"],
    egress: [{
      to: [{ ipBlock: { cidr: "10.165.0.0/24", except: ["10.165.0.12/30"] } }],
      ports: [{ protocol: "UDP", port: 80, endPort: 81 }],
    }],
  })]);
  assert.match(s, /oifname "net1" jump out_net1/);
  assert.match(
    s,
    /ip daddr 10\.165\.0\.0\/24 ip daddr != \{ 10\.165\.0\.12\/30 \} meta l4proto udp th dport 80-81 accept/,
  );
  assert.ok(!s.includes("eth0") && !s.includes("the node"));
});

Deno.test("renderPodTable() of an isolated pod with no allows drops everything but replies", () => {
  const s = xa([np("x", "deny", { podSelector: {}, policyTypes: ["Ingress", "Egress"] })]);
  assert.match(s, /chain out_eth0 \{\n {4}drop\n {2}\}/);
  assert.match(
    s,
    /chain in_eth0 \{\n {4}ip saddr \{ 10\.164\.0\.1 \} accept comment "the node"\n {4}drop\n {2}\}/,
  );
});

Deno.test("createOnly() turns a replacing script into one that creates the table", () => {
  assert.equal(createOnly(xa([])), undefined, "a removal has no create form");
  const s = xa([np("x", "p", { podSelector: {}, policyTypes: ["Ingress"] })]);
  const c = createOnly(s)!;
  assert.ok(c.startsWith("create table inet podplex\ntable inet podplex {\n"), c);
  assert.equal(c.replace("create table inet podplex\n", ""), s.replace(/^(.*\n){2}/, ""));
  assert.equal(createOnly("table inet other\n"), undefined);
});
