import assert from "node:assert/strict";
import { Code } from "../conf/errors.ts";
import { createTrace } from "../conf/trace.ts";
import { inProcessRequest } from "../delegates/runner/builtin.ts";
import { calls, cniError, metaHarness } from "./_testing.ts";
import { POD_LABELS_ANNOTATION } from "./policy/source.ts";
import type { PluginRequest } from "../delegates/types.ts";

const ANN = "io.kubernetes.cri.pod-annotations";
const DENY_ALL = {
  apiVersion: "networking.k8s.io/v1",
  kind: "NetworkPolicy",
  metadata: { name: "deny-web" },
  spec: { podSelector: { matchLabels: { app: "web" } } },
};

type H = Awaited<ReturnType<typeof metaHarness>>;

/** An ADD of pod default/web with the given annotations (delivered as containerd does). */
function addReq(h: H, annotations: Record<string, string> = {}): PluginRequest {
  return {
    ...h.req("ADD", { args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web" }),
    conf: h.conf({ capabilities: { [ANN]: true }, runtimeConfig: { [ANN]: annotations } }),
  };
}

async function writePolicy(h: H, policy: unknown) {
  await Deno.mkdir(`${h.dir}/policies.d/default`, { recursive: true });
  await Deno.writeTextFile(`${h.dir}/policies.d/default/p.json`, JSON.stringify(policy));
}

Deno.test("ADD applies the table of a pod a local policy selects before it returns", async () => {
  const applied: Array<[string, string]> = [];
  await using h = await metaHarness({}, {}, {
    applyPolicyTable: (netns, script) => (applied.push([netns, script]), Promise.resolve()),
  });
  await writePolicy(h, DENY_ALL);
  await h.plugin.invoke(addReq(h, { [POD_LABELS_ANNOTATION]: "app=web,tier=front" }));
  assert.equal(applied.length, 1);
  assert.equal(applied[0][0], `${h.dir}/netns`);
  assert.ok(applied[0][1].includes("chain in_eth0 {\n    drop\n  }"), applied[0][1]);
  const state = (await h.store.list())[0];
  assert.deepEqual(state.podLabels, { app: "web", tier: "front" });
});

Deno.test("ADD of a pod no policy selects, or with no policiesDir, applies no table", async () => {
  const applied: string[] = [];
  await using h = await metaHarness({}, {}, {
    applyPolicyTable: (_n, script) => (applied.push(script), Promise.resolve()),
  });
  await h.plugin.invoke(addReq(h, { [POD_LABELS_ANNOTATION]: "app=web" }));
  assert.deepEqual(applied, []); // no folder
  await h.plugin.invoke({ ...h.req("DEL"), conf: h.conf() });
  await writePolicy(h, DENY_ALL);
  await h.plugin.invoke(addReq(h, { [POD_LABELS_ANNOTATION]: "app=db" }));
  assert.deepEqual(applied, []); // not selected
});

Deno.test("ADD whose table cannot be applied fails with 101 and leaves nothing", async () => {
  await using h = await metaHarness({}, {}, {
    applyPolicyTable: () => Promise.reject(new Error("Error: Could not process rule")),
  });
  await writePolicy(h, DENY_ALL);
  const e = await cniError(h.plugin.invoke(addReq(h, { [POD_LABELS_ANNOTATION]: "app=web" })));
  assert.equal(e.code, Code.KernelFailure);
  assert.match(e.message, /network policy table of pod "default\/web".*Could not process rule/);
  // Every attachment made was DELed in reverse, and the state is gone.
  assert.deepEqual(calls(h.events, "DEL").length, 6);
  assert.deepEqual(await h.store.list(), []);
});

Deno.test("ADD of a pod whose source has not synced yet makes it deny-all", async () => {
  const applied: string[] = [];
  await using h = await metaHarness({}, {}, {
    applyPolicyTable: (_n, script) => (applied.push(script), Promise.resolve()),
    policy: () => ({ worldFor: () => Promise.resolve("unsynced" as const) }),
  });
  await h.plugin.invoke(addReq(h));
  assert.equal(applied.length, 1);
  for (const chain of ["in_eth0", "out_eth0", "in_net1", "out_net1"]) {
    assert.ok(applied[0].includes(`chain ${chain} {\n    drop\n  }`), applied[0]);
  }
});

Deno.test("ADD refuses a bad label annotation with 7 before any delegate runs", async () => {
  await using h = await metaHarness();
  const e = await cniError(h.plugin.invoke(addReq(h, { [POD_LABELS_ANNOTATION]: "app" })));
  assert.equal(e.code, Code.InvalidConfig);
  assert.match(e.message, /Invalid label "app" in the annotation "podplex.io\/labels"/);
  assert.deepEqual(calls(h.events), []);
});

Deno.test("ADD and DEL without a policy file still mark the policy steps in a trace", async () => {
  await using h = await metaHarness();
  const names = (t: ReturnType<typeof createTrace>) => {
    let line = "";
    t.flush((l) => line = l);
    return (JSON.parse(line.slice("PODPLEX_TRACE ".length)).marks as [string][]).map((m) => m[0]);
  };
  const add = createTrace();
  await h.plugin.call!({
    ...inProcessRequest(addReq(h, { [POD_LABELS_ANNOTATION]: "app=web" })),
    trace: add,
  });
  assert.deepEqual(names(add).filter((n) => n.startsWith("policy")), ["policy", "policy-peers"]);
  const del = createTrace();
  await h.plugin.call!({ ...inProcessRequest({ ...h.req("DEL"), conf: h.conf() }), trace: del });
  assert.deepEqual(names(del).filter((n) => n.startsWith("policy")), ["policy-peers"]);
});

Deno.test("ADD creates the pod's table, and replaces one the netns holds already", async () => {
  const applied: string[] = [];
  let tableThere = false;
  await using h = await metaHarness({}, {}, {
    applyPolicyTable: (_n, script) => {
      applied.push(script);
      if (script.startsWith("create table") && tableThere) {
        return Promise.reject(new Error("Could not process rule: File exists"));
      }
      return Promise.resolve();
    },
  });
  await writePolicy(h, DENY_ALL);
  await h.plugin.invoke(addReq(h, { [POD_LABELS_ANNOTATION]: "app=web" }));
  assert.equal(applied.length, 1);
  assert.ok(applied[0].startsWith("create table inet podplex\ntable inet podplex {"), applied[0]);
  await h.plugin.invoke({ ...h.req("DEL"), conf: h.conf() });
  tableThere = true;
  applied.length = 0;
  await h.plugin.invoke(addReq(h, { [POD_LABELS_ANNOTATION]: "app=web" }));
  assert.equal(applied.length, 2, "the create refused, then the whole replacement");
  assert.ok(applied[1].startsWith("table inet podplex\ndelete table inet podplex\n"));
  assert.equal(
    applied[1].split("\n").slice(2).join("\n"),
    applied[0].split("\n").slice(1).join("\n"),
  );
});
