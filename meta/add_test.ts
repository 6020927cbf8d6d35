import assert from "node:assert/strict";
import { calls, cniError, CONTAINER, metaHarness } from "./_testing.ts";

Deno.test("metaAdd() runs each network's chain in order on eth0, net1, net2", async () => {
  await using h = await metaHarness();
  const result = await h.plugin.invoke(h.req("ADD"));
  assert.deepEqual(calls(h.events), [
    "main:ADD:net-a",
    "ipam:ADD:net-a",
    "main:ADD:net-b",
    "ipam:ADD:net-b",
    "main:ADD:net-c",
    "ipam:ADD:net-c",
  ]);
  assert.deepEqual(h.events.map((e) => e.ifname), ["eth0", "eth0", "net1", "net1", "net2", "net2"]);
  const ifaces = (result!.interfaces as Array<{ name: string }>).map((i) => i.name);
  assert.deepEqual(ifaces, ["eth0", "net1", "net2"]);
  assert.ok(await h.store.load(CONTAINER, "eth0"), "the state stays after a good ADD");
});

Deno.test("metaAdd() writes the pod's state before the first delegate runs", async () => {
  await using h = await metaHarness();
  await h.plugin.invoke(h.req("ADD"));
  const first = h.events.find((e) => e.verb === "ADD");
  assert.equal(first?.stateSaved, true, "state must be on disk before any side effect");
  const state = await h.store.load(CONTAINER, "eth0");
  assert.deepEqual(state?.attachments.map((a) => a.network), [
    "default/net-a",
    "default/net-b",
    "default/net-c",
  ]);
});

Deno.test("metaAdd() refuses a second ADD of the same container and interface", async () => {
  await using h = await metaHarness();
  await h.plugin.invoke(h.req("ADD"));
  const before = h.events.length;
  const e = await cniError(h.plugin.invoke(h.req("ADD")));
  assert.match(e.message, /already has attachments/);
  assert.equal(h.events.length, before, "no delegate runs for a repeated ADD");
});

Deno.test("a failed ADD rolls back every attachment tried, in reverse, and forgets the pod", async () => {
  await using h = await metaHarness({}, { fail: { "ADD:net-c": 11 } });
  const e = await cniError(h.plugin.invoke(h.req("ADD")));
  assert.equal(e.code, 11, "the failing delegate's code is the ADD's");
  assert.match(e.message, /net-c/);
  // net-c's chain failed in its first plugin: only that one ran, only that one is undone.
  assert.deepEqual(calls(h.events, "DEL"), [
    "main:DEL:net-c",
    "ipam:DEL:net-b",
    "main:DEL:net-b",
    "ipam:DEL:net-a",
    "main:DEL:net-a",
  ]);
  assert.equal(await h.store.load(CONTAINER, "eth0"), null, "a rolled-back pod has no state");
});

Deno.test("a rollback that cannot release an attachment keeps the state and joins its error", async () => {
  await using h = await metaHarness({}, { fail: { "ADD:net-c": 11, "DEL:net-a": 5 } });
  const e = await cniError(h.plugin.invoke(h.req("ADD")));
  assert.equal(e.code, 11);
  assert.match(e.details ?? "", /rollback also failed: .*net-a/);
  // every attachment, and every plugin that ran, was still tried
  assert.deepEqual(calls(h.events, "DEL"), [
    "main:DEL:net-c",
    "ipam:DEL:net-b",
    "main:DEL:net-b",
    "ipam:DEL:net-a",
    "main:DEL:net-a",
  ]);
  assert.ok(await h.store.load(CONTAINER, "eth0"), "the runtime's DEL must be able to finish");
});

Deno.test("ADD of a Kubernetes pod whose annotations cannot be read says which setting is missing", async () => {
  await using h = await metaHarness();
  const k8s = { args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web" };
  await h.plugin.invoke(h.req("ADD", k8s));
  assert.equal(h.warnings.length, 1, JSON.stringify(h.warnings));
  assert.match(h.warnings[0], /pod "default\/web".*"io\.kubernetes\.cri\.pod-annotations"/);
  await h.plugin.invoke(h.req("DEL", k8s));

  // Declared (containerd then passes the annotations; a nil map means the pod has none),
  // or a pod that is not Kubernetes' (podman names no namespace): nothing to say.
  const declared = { ...h.req("ADD", k8s) };
  declared.conf = h.conf({ capabilities: { "io.kubernetes.cri.pod-annotations": true } });
  await h.plugin.invoke(declared);
  await h.plugin.invoke({ ...h.req("DEL", k8s), conf: declared.conf });
  await h.plugin.invoke(h.req("ADD", { args: "IgnoreUnknown=1;K8S_POD_NAME=web" }));
  assert.equal(h.warnings.length, 1, JSON.stringify(h.warnings));
});
