import assert from "node:assert/strict";
import { renderGraph } from "./graph.ts";
import type { PodView } from "./_pod_view.ts";

const pods: PodView[] = [{
  name: "a1",
  namespace: "demo",
  containerId: "podplex-demo-a1",
  netns: "/run/netns/a1",
  interfaces: [
    { interface: "eth0", network: "demo/lan", ips: ["10.0.0.2"] },
    { interface: "net1", network: "demo/overlay", ips: ["10.1.0.2"] },
  ],
}];

Deno.test("renderGraph() draws pods, networks and one labelled edge per interface in Mermaid", () => {
  const m = renderGraph(pods, ["demo/idle"], "mermaid");
  assert.equal(
    m,
    [
      "flowchart LR",
      '  net_demo_idle(("demo/idle"))',
      '  net_demo_lan(("demo/lan"))',
      '  net_demo_overlay(("demo/overlay"))',
      '  pod_demo_a1["pod demo/a1"]',
      '  pod_demo_a1 -- "eth0 10.0.0.2" --- net_demo_lan',
      '  pod_demo_a1 -- "net1 10.1.0.2" --- net_demo_overlay',
      "",
    ].join("\n"),
  );
});

Deno.test("renderGraph() writes an undirected DOT graph", () => {
  const d = renderGraph(pods, [], "dot");
  assert.match(d, /^graph podplex \{\n/);
  assert.match(d, /pod_demo_a1 -- net_demo_lan \[label="eth0 10\.0\.0\.2"\];/);
  assert.match(d, /net_demo_overlay \[label="demo\/overlay", shape=ellipse\];/);
  assert.match(d, /\}\n$/);
});
