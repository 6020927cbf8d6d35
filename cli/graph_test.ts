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

Deno.test("renderGraph() draws the cluster network's nodes on the VXLAN overlay", () => {
  const overlay = {
    network: "demo/cluster",
    cidr: "10.244.0.0/16",
    vni: 1,
    nodes: [
      { node: "node-a", subnet: "10.244.5.0/24", publicIp: "10.250.99.11", self: true },
      { node: "node-b", subnet: "10.244.9.0/24", publicIp: "10.250.99.12", self: false },
    ],
  };
  const m = renderGraph([], ["demo/cluster"], "mermaid", overlay);
  assert.ok(m.includes('  overlay_vni1{{"VXLAN VNI 1 10.244.0.0/16"}}\n'), m);
  assert.ok(m.includes('  node_node_a[["node node-a 10.244.5.0/24 (this node)"]]\n'), m);
  assert.ok(m.includes('  node_node_b -- "10.250.99.12" --- overlay_vni1\n'), m);
  assert.ok(m.includes("  net_demo_cluster --- node_node_a\n"), m);
  assert.ok(!m.includes("net_demo_cluster --- node_node_b"), m);
  const d = renderGraph([], [], "dot", overlay);
  assert.match(d, /node_node_b -- overlay_vni1 \[label="10\.250\.99\.12"\];\n\}\n$/);
});
