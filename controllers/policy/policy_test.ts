/**
 * The policy controller without root: an in-memory API server (LIST/WATCH), fake states and
 * a recording applier stand in for the cluster, the state store and nftables. What the
 * kernel does with the tables is shown by tests/policy_daemon_test.ts on real netns.
 */
import assert from "node:assert/strict";
import { flush, testContext } from "../testing.ts";
import type { PodState } from "../../meta/state.ts";
import { PATHS, type PolicyController, startNetworkPolicy } from "./policy.ts";
import { FakeKube, mnpObj, npObj, nsObj, podObj, stateOf } from "./_testing.ts";

const NP = PATHS.networkPolicies;
const MNP = PATHS.multiPolicies[0];

interface Rig {
  kube: FakeKube;
  ctx: ReturnType<typeof testContext>;
  states: PodState[];
  /** netns → scripts written, in order. */
  writes: Array<[string, string]>;
  c: PolicyController;
  /** The pods (`ns-name`) written since the last call, sorted. */
  written(): string[];
  /** Lets the watches deliver and the renders finish. */
  settle(): Promise<void>;
}

/** x/a, x/b, y/a local; y/b on another node; namespaces x, y labelled ns=<name>. */
async function rig(
  setup: (k: FakeKube) => void = () => {},
  opts: { fail?: boolean } = {},
): Promise<Rig> {
  const kube = new FakeKube();
  kube.put(PATHS.namespaces, nsObj("x", { ns: "x" }));
  kube.put(PATHS.namespaces, nsObj("y", { ns: "y" }));
  const pods: Array<[string, string, string, string?]> = [
    ["x", "a", "10.227.0.10"],
    ["x", "b", "10.227.0.11"],
    ["y", "a", "10.227.0.12"],
    ["y", "b", "10.227.1.13", "node-2"],
  ];
  for (const [ns, name, ip, node] of pods) {
    kube.put(PATHS.pods, podObj(ns, name, { labels: { pod: name }, ip, node }));
  }
  setup(kube);
  const states = [
    stateOf("x", "a", "10.227.0.10", "10.228.0.10"),
    stateOf("x", "b", "10.227.0.11", "10.228.0.11"),
    stateOf("y", "a", "10.227.0.12"),
  ];
  const ctx = testContext();
  const writes: Array<[string, string]> = [];
  let seen = 0;
  const c = await startNetworkPolicy({
    ...ctx,
    api: kube,
    nodeName: "node-1",
    states: () => Promise.resolve(states),
    apply(netns, script) {
      if (opts.fail) return Promise.reject(new Error("Cannot apply: No such file"));
      writes.push([netns, script]);
      return Promise.resolve();
    },
    hasTable: () => Promise.resolve(false),
    pageSize: 3, // the 4 pods come in two LIST pages
  });
  const r: Rig = {
    kube,
    ctx,
    states,
    writes,
    c,
    written() {
      const out = writes.slice(seen).map(([ns]) => ns.replace("/run/netns/", "")).sort();
      seen = writes.length;
      return out;
    },
    async settle() {
      await flush();
      await c.idle();
      await flush();
    },
  };
  await r.settle();
  return r;
}

function lastScript(r: Rig, pod: string): string {
  return r.writes.filter(([ns]) => ns.endsWith(pod)).at(-1)?.[1] ?? "";
}

const denyAll = { podSelector: {}, policyTypes: ["Ingress"] };

Deno.test("first sync writes the tables of the pods a policy selects, only those", async () => {
  const r = await rig((k) =>
    k.put(NP, npObj("x", "deny", { podSelector: { matchLabels: { pod: "a" } } }))
  );
  assert(r.c.synced);
  assert.deepEqual(r.written(), ["x-a"]);
  // Every page of the LIST was kept (y/b is on the second page of pods).
  const w = await r.c.source.worldFor({
    namespace: "x",
    name: "a",
    labels: { pod: "a" },
    interfaces: [],
    ports: [],
  });
  assert(w && w !== "unsynced");
  assert.deepEqual(w.pods.map((p) => `${p.namespace}/${p.name}`).sort(), [
    "x/a",
    "x/b",
    "y/a",
    "y/b",
  ]);
  assert.match(lastScript(r, "x-a"), /chain in_eth0 \{\n(.*\n)*? {4}drop\n/);
  assert.deepEqual(r.c.enforced(), 1);
  assert.match(r.ctx.metrics.render(), /podplex_policy_pods_enforced 1/);
  assert.match(r.ctx.metrics.render(), /podplex_policy_synced 1/);
  await r.c.close();
});

Deno.test("a policy added and deleted re-renders only the pods it selects", async () => {
  const r = await rig();
  assert.deepEqual(r.written(), []);
  r.kube.put(NP, npObj("x", "deny", { podSelector: { matchLabels: { pod: "b" } } }));
  await r.settle();
  assert.deepEqual(r.written(), ["x-b"]);
  r.kube.put(NP, npObj("y", "all", denyAll)); // y/a local, y/b on node-2
  await r.settle();
  assert.deepEqual(r.written(), ["y-a"]);
  r.kube.remove(NP, "x/deny");
  await r.settle();
  assert.deepEqual(r.written(), ["x-b"]);
  assert.deepEqual(lastScript(r, "x-b"), "table inet podplex\ndelete table inet podplex\n");
  assert.deepEqual(r.c.enforced(), 1);
  await r.c.close();
});

Deno.test("a namespace's label change re-renders the pods whose peers select namespaces", async () => {
  const r = await rig((k) => {
    k.put(
      NP,
      npObj("x", "from-blue", {
        podSelector: { matchLabels: { pod: "a" } },
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "blue" } } }] }],
      }),
    );
    k.put(
      NP,
      npObj("x", "plain", {
        podSelector: { matchLabels: { pod: "b" } },
        ingress: [{ from: [{ podSelector: {} }] }],
      }),
    );
  });
  assert.deepEqual(r.written(), ["x-a", "x-b"]);
  assert(!lastScript(r, "x-a").includes("10.227.0.12"));
  r.kube.put(PATHS.namespaces, nsObj("y", { ns: "y", team: "blue" }));
  await r.settle();
  assert.deepEqual(r.written(), ["x-a"]); // x/b's policy does not look at namespace labels
  assert.match(lastScript(r, "x-a"), /elements = \{ 10\.227\.0\.12, 10\.227\.1\.13 \}/);
  await r.c.close();
});

Deno.test("a pod's label change re-renders itself and the pods whose peers may name it", async () => {
  const r = await rig((k) => {
    k.put(
      NP,
      npObj("x", "from-web", {
        podSelector: { matchLabels: { pod: "a" } },
        ingress: [{
          from: [{ namespaceSelector: {}, podSelector: { matchLabels: { role: "web" } } }],
        }],
      }),
    );
    k.put(NP, npObj("y", "deny", denyAll));
  });
  assert.deepEqual(r.written(), ["x-a", "y-a"]);
  // x/b becomes a web pod: x/a's peers name it now; y/a's table is not touched.
  r.kube.put(
    PATHS.pods,
    podObj("x", "b", { labels: { pod: "b", role: "web" }, ip: "10.227.0.11" }),
  );
  await r.settle();
  assert.deepEqual(r.written(), ["x-a"]);
  assert.match(lastScript(r, "x-a"), /elements = \{ 10\.227\.0\.11 \}/);
  // y/b (node-2) too: only the peer set's elements change, so only y/b's address is added.
  r.kube.put(
    PATHS.pods,
    podObj("y", "b", { labels: { pod: "b", role: "web" }, ip: "10.227.1.13", node: "node-2" }),
  );
  await r.settle();
  assert.deepEqual(r.written(), ["x-a"]);
  assert.equal(
    lastScript(r, "x-a"),
    "add element inet podplex in_eth0_0_v4 { 10.227.1.13 }\n",
  );
  assert.equal(r.c.stats.updates, 2, "x/b: a set and its rule added; y/b: an element");
  // y/a's own labels change: only it is looked at (and comes out the same: not written).
  const before = r.c.stats.resolved;
  r.kube.put(PATHS.pods, podObj("y", "a", { labels: { pod: "a", v: "2" }, ip: "10.227.0.12" }));
  await r.settle();
  assert.deepEqual(r.c.stats.resolved - before, 1);
  assert.deepEqual(r.written(), []);
  await r.c.close();
});

Deno.test("unsynced: an ADD is told to start deny-all until every collection is listed", async () => {
  const kube = new FakeKube();
  kube.missing.add(PATHS.namespaces);
  const ctx = testContext();
  const c = await startNetworkPolicy({
    ...ctx,
    api: kube,
    states: () => Promise.resolve([]),
    apply: () => Promise.resolve(),
    backoffMs: 1000,
  });
  await flush();
  const pod = { namespace: "x", name: "a", labels: {}, interfaces: [], ports: [] };
  assert.deepEqual(await c.source.worldFor(pod), "unsynced");
  assert(!c.synced);
  kube.missing.delete(PATHS.namespaces);
  kube.put(NP, npObj("x", "deny", denyAll));
  await ctx.clock.advance(1000); // the namespaces' LIST is retried after its back-off
  await c.idle();
  assert(c.synced, "synced once the namespaces are listed (no MultiNetworkPolicy CRD: none)");
  const world = await c.source.worldFor(pod);
  assert(world !== "unsynced" && world !== undefined);
  assert.deepEqual(world.policies.map((p) => p.name), ["deny"]);
  assert.deepEqual(
    await c.source.worldFor({ ...pod, namespace: "y" }),
    undefined,
    "none selects it",
  );
  await c.close();
});

Deno.test("a MultiNetworkPolicy draws only the interface of its network", async () => {
  const r = await rig((k) =>
    k.put(MNP, mnpObj("x", "sec", "default/sec", { podSelector: {}, policyTypes: ["Ingress"] }))
  );
  assert.deepEqual(r.written(), ["x-a", "x-b"]); // y/a has no interface on default/sec
  assert.match(lastScript(r, "x-a"), /iifname "net1" jump in_net1/);
  assert(!lastScript(r, "x-a").includes("in_eth0"));
  await r.c.close();
});

Deno.test("a lost watch lists again and writes only the tables that changed", async () => {
  const r = await rig((k) => k.put(NP, npObj("x", "deny", denyAll)));
  assert.deepEqual(r.written(), ["x-a", "x-b"]);
  const lists = r.kube.lists;
  r.kube.expire();
  await r.settle();
  assert(r.kube.lists > lists, "listed again after 410");
  assert.deepEqual(r.written(), []);
  // Missed while the watch was down: a policy of y. The next LIST brings it.
  r.kube.breakWatches();
  await flush();
  r.kube.put(NP, npObj("y", "deny", denyAll));
  await r.ctx.clock.advance(500);
  await r.settle();
  assert.deepEqual(r.written(), ["y-a"]);
  await r.c.close();
});

Deno.test("a bad rule is dropped, logged once and counted; a table failure is counted", async () => {
  const bad = npObj("x", "bad", {
    podSelector: { matchLabels: { pod: "a" } },
    ingress: [{ from: [{ ipBlock: { cidr: "not-a-cidr" } }] }, { ports: [{ port: 80 }] }],
  });
  const r = await rig((k) => k.put(NP, bad), { fail: true });
  assert.deepEqual(r.c.dropped(), 1);
  r.kube.put(NP, { ...bad, metadata: { ...bad.metadata, labels: { v: "2" } } });
  await r.settle();
  const lines = r.ctx.lines.filter((l) => l.includes("not-a-cidr"));
  assert.deepEqual(lines.length, 1, lines.join("\n"));
  assert(r.c.stats.renderErrors >= 1);
  assert.match(r.ctx.metrics.render(), /podplex_policy_dropped_rules 1/);
  await r.c.close();
});

Deno.test("a new local pod is found from its state and rendered; close twice leaves nothing", async () => {
  const r = await rig((k) => k.put(NP, npObj("z", "deny", denyAll)));
  r.kube.put(PATHS.namespaces, nsObj("z"));
  r.kube.put(PATHS.pods, podObj("z", "c", { ip: "10.227.0.20" }));
  r.states.push(stateOf("z", "c", "10.227.0.20"));
  await r.c.source.podChanged(
    { namespace: "z", name: "c", labels: {}, interfaces: [], ports: [] },
    false,
  );
  await r.settle();
  assert.deepEqual(r.written(), ["z-c"]);
  await r.c.close();
  await r.c.close();
  assert.deepEqual(r.ctx.clock.pending, 0, "no timer left");
  assert.deepEqual(r.kube.watching, 0, "no watch left");
  await r.c.reconcile(); // a no-op after close
  assert.deepEqual(r.written(), []);
});

Deno.test("MultiNetworkPolicy v1beta1 is watched when v1beta2 is not served", async () => {
  const r = await rig((k) => {
    k.missing.add(PATHS.multiPolicies[0]);
    k.put(
      PATHS.multiPolicies[1],
      mnpObj("x", "sec", "default/sec", { podSelector: {}, policyTypes: ["Ingress"] }),
    );
  });
  assert.deepEqual(r.written(), ["x-a", "x-b"]);
  assert.match(lastScript(r, "x-b"), /jump in_net1/);
  r.kube.remove(PATHS.multiPolicies[1], "x/sec");
  await r.settle();
  assert.deepEqual(r.written(), ["x-a", "x-b"]);
  await r.c.close();
});

Deno.test("reconcile() racing itself writes nothing twice", async () => {
  const r = await rig((k) => k.put(NP, npObj("x", "deny", denyAll)));
  assert.deepEqual(r.written(), ["x-a", "x-b"]);
  const before = r.c.stats.resolved;
  await Promise.all([r.c.reconcile(), r.c.reconcile(), r.c.reconcile()]);
  assert.deepEqual(r.written(), [], "the same tables: none written again");
  assert.ok(r.c.stats.resolved - before >= 3, "every local pod looked at");
  // The resync timer does the same on its own.
  await r.ctx.clock.advance(30_000);
  await r.settle();
  assert.deepEqual(r.written(), []);
  await r.c.close();
});
