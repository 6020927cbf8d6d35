import assert from "node:assert/strict";
import { flush, testContext } from "../testing.ts";
import { stateOf } from "../policy/_testing.ts";
import type { PodState } from "../../meta/state.ts";
import { type DirWatch, type LocalPolicyContext, startLocalPolicy } from "./local_policy.ts";

/** A watch whose events the test sends. */
class FakeWatch implements DirWatch {
  closed = false;
  #queue: unknown[] = [];
  #wake?: () => void;
  #ended = false;
  #error?: Error;
  send(ev: unknown = { kind: "modify" }) {
    this.#queue.push(ev);
    this.#wake?.();
  }
  /** Ends the stream (as a watch that failed). */
  fail(e: Error) {
    this.#error = e;
    this.#wake?.();
  }
  close() {
    this.closed = true;
    this.#ended = true;
    this.#wake?.();
  }
  async *[Symbol.asyncIterator]() {
    for (;;) {
      while (this.#queue.length) yield this.#queue.shift();
      if (this.#error) throw this.#error;
      if (this.#ended) return;
      await new Promise<void>((r) => this.#wake = r);
      this.#wake = undefined;
    }
  }
}

const DENY_WEB = JSON.stringify({
  apiVersion: "networking.k8s.io/v1",
  kind: "NetworkPolicy",
  metadata: { name: "deny-web" },
  spec: { podSelector: { matchLabels: { app: "web" } }, policyTypes: ["Ingress"] },
});

function labelled(name: string, ip: string, labels: Record<string, string>): PodState {
  return { ...stateOf("default", name, ip), podLabels: labels };
}

interface Rig {
  ctx: LocalPolicyContext & ReturnType<typeof testContext>;
  dir: string;
  watches: FakeWatch[];
  /** netns → the last script applied there. */
  applied: Map<string, string>;
  applies: () => number;
}

async function rig(opts: { create?: boolean; policy?: boolean } = {}): Promise<Rig> {
  const base = await Deno.makeTempDir({ prefix: "ppq-lpol" });
  const dir = `${base}/policies.d`;
  if (opts.create !== false) await Deno.mkdir(`${dir}/default`, { recursive: true });
  if (opts.policy) await Deno.writeTextFile(`${dir}/default/deny.json`, DENY_WEB);
  const watches: FakeWatch[] = [];
  const applied = new Map<string, string>();
  let n = 0;
  const states = [labelled("web", "10.227.0.2", { app: "web" }), labelled("cli", "10.227.0.3", {})];
  const ctx = {
    ...testContext(),
    dir,
    states: () => Promise.resolve(states),
    apply: (netns: string, script: string) => (n++, applied.set(netns, script), Promise.resolve()),
    watch: (d: string) => {
      assert.equal(d, dir);
      const w = new FakeWatch();
      watches.push(w);
      return w;
    },
  };
  return { ctx, dir, watches, applied, applies: () => n };
}

const isolated = (script: string | undefined) => !!script?.includes("chain in_eth0 {");
const WEB = "/run/netns/default-web";

Deno.test("local policy: a file written re-renders every pod after the debounce, once", async () => {
  const r = await rig();
  const c = await startLocalPolicy(r.ctx);
  try {
    assert.equal(r.watches.length, 1);
    assert.equal(r.applies(), 0, "a folder without files leaves the pods alone at start");
    await Deno.writeTextFile(`${r.dir}/default/deny.json`, DENY_WEB);
    r.watches[0].send({ kind: "create" });
    r.watches[0].send({ kind: "modify" });
    await flush();
    await r.ctx.clock.advance(50);
    assert.equal(r.applies(), 0, "not before the quiet time");
    r.watches[0].send({ kind: "modify" });
    await flush();
    await r.ctx.clock.advance(74);
    assert.equal(r.applies(), 0, "each event restarts the quiet time");
    await r.ctx.clock.advance(1);
    await flush();
    assert.equal(r.applies(), 2, "both pods, once");
    assert.ok(isolated(r.applied.get(WEB)));
    assert.ok(!isolated(r.applied.get("/run/netns/default-cli")));
    assert.match(
      r.ctx.lines.join("\n"),
      /1 policy in .*: 2 pods re-rendered \(1 isolated, 0 failed\)/,
    );

    await Deno.remove(`${r.dir}/default/deny.json`);
    r.watches[0].send({ kind: "remove" });
    await flush();
    await r.ctx.clock.advance(75);
    await flush();
    assert.equal(r.applies(), 4);
    assert.ok(!isolated(r.applied.get(WEB)), "the file removed opens the pod");
    assert.match(r.ctx.metrics.render(), /podplex_local_policy_passes_total 2/);
  } finally {
    await c.close();
    await Deno.remove(r.dir.replace(/\/policies\.d$/, ""), { recursive: true });
  }
});

Deno.test("local policy: a folder holding a policy at start is enforced at once", async () => {
  const r = await rig({ policy: true });
  const c = await startLocalPolicy(r.ctx);
  try {
    assert.equal(r.applies(), 2);
    assert.ok(isolated(r.applied.get(WEB)));
  } finally {
    await c.close();
    await Deno.remove(r.dir.replace(/\/policies\.d$/, ""), { recursive: true });
  }
});

Deno.test("local policy: a folder made after start is found by the look, and its removal too", async () => {
  const r = await rig({ create: false });
  const c = await startLocalPolicy(r.ctx);
  try {
    assert.equal(r.watches.length, 0);
    assert.match(r.ctx.lines.join("\n"), /does not exist yet/);
    await r.ctx.clock.advance(1000);
    assert.equal(r.watches.length, 0);
    await Deno.mkdir(`${r.dir}/default`, { recursive: true });
    await Deno.writeTextFile(`${r.dir}/default/deny.json`, DENY_WEB);
    await r.ctx.clock.advance(1000);
    assert.equal(r.watches.length, 1, "watched once it exists");
    await r.ctx.clock.advance(75);
    await flush();
    assert.ok(isolated(r.applied.get(WEB)), "its policy enforced without an event");

    await Deno.remove(r.dir, { recursive: true });
    await r.ctx.clock.advance(1000);
    assert.equal(r.watches[0].closed, true);
    await r.ctx.clock.advance(75);
    await flush();
    assert.ok(!isolated(r.applied.get(WEB)), "the folder gone: no policy");
  } finally {
    await c.close();
    await Deno.remove(r.dir.replace(/\/policies\.d$/, ""), { recursive: true });
  }
});

Deno.test("local policy: a watch that fails is opened again at the next look", async () => {
  const r = await rig();
  const c = await startLocalPolicy(r.ctx);
  try {
    r.watches[0].fail(new Error("inotify overflow"));
    await flush();
    assert.match(r.ctx.lines.join("\n"), /the watch of .* failed: Error: inotify overflow/);
    await r.ctx.clock.advance(1000);
    assert.equal(r.watches.length, 2);
    await Deno.writeTextFile(`${r.dir}/default/deny.json`, DENY_WEB);
    r.watches[1].send();
    await flush();
    await r.ctx.clock.advance(75);
    await flush();
    assert.ok(isolated(r.applied.get(WEB)));
  } finally {
    await c.close();
    await Deno.remove(r.dir.replace(/\/policies\.d$/, ""), { recursive: true });
  }
});

Deno.test("local policy: reconcile racing itself runs one pass at a time; close twice", async () => {
  const r = await rig({ policy: true });
  let inFlight = 0;
  let most = 0;
  const apply = r.ctx.apply;
  r.ctx.apply = async (netns, script) => {
    most = Math.max(most, ++inFlight);
    await flush(2);
    await apply(netns, script);
    inFlight--;
  };
  const c = await startLocalPolicy(r.ctx);
  const before = r.applies();
  await Promise.all([c.reconcile(), c.reconcile(), c.reconcile()]);
  assert.equal(most, 1, "never two passes at once");
  assert.equal(r.applies() - before, 4, "the first pass and one more after it");
  await c.close();
  await c.close();
  const w = r.watches[0];
  assert.equal(w.closed, true);
  await c.reconcile(); // after close: nothing
  assert.equal(r.applies() - before, 4);
  assert.equal(r.ctx.clock.pending, 0, "no timer left");
  await Deno.remove(r.dir.replace(/\/policies\.d$/, ""), { recursive: true });
});
