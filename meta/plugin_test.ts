import assert from "node:assert/strict";
import { calls, cniError, CONTAINER, metaHarness } from "./_testing.ts";

Deno.test("DEL deletes the pod's link group once, then DELs every attachment in reverse", async () => {
  await using h = await metaHarness();
  await h.plugin.invoke(h.req("ADD"));
  h.events.length = 0;
  await h.plugin.invoke(h.req("DEL"));
  assert.deepEqual(
    h.events.map((e) => `${e.who}:${e.verb}:${e.who === "kernel" ? "" : e.network}`),
    [
      "kernel:group-delete:",
      "ipam:DEL:net-c",
      "main:DEL:net-c",
      "ipam:DEL:net-b",
      "main:DEL:net-b",
      "ipam:DEL:net-a",
      "main:DEL:net-a",
    ],
  );
  assert.equal(await h.store.load(CONTAINER, "eth0"), null);
});

Deno.test("a chain whose plugin needs the link on DEL is DELed before the group delete", async () => {
  await using h = await metaHarness({
    "net-b": ["ppfake", "ppfakeipam"],
    "net-a": ["ppfake"],
    "net-c": ["ppfake"],
  }, {
    ipamNeedsLink: true,
  });
  await h.plugin.invoke(h.req("ADD"));
  h.events.length = 0;
  await h.plugin.invoke(h.req("DEL"));
  const order = h.events.map((e) => e.who === "kernel" ? "group" : `${e.who}:${e.network}`);
  assert.deepEqual(order, ["ipam:net-b", "main:net-b", "group", "main:net-c", "main:net-a"]);
});

Deno.test("DEL without state releases what the conf says the pod had, and succeeds", async () => {
  await using h = await metaHarness();
  await h.plugin.invoke(h.req("DEL"));
  assert.deepEqual(calls(h.events, "DEL").filter((c) => c.startsWith("main")), [
    "main:DEL:net-c",
    "main:DEL:net-b",
    "main:DEL:net-a",
  ]);
});

Deno.test("DEL of a pod whose release fails keeps the state for the runtime's retry", async () => {
  await using h = await metaHarness({}, {});
  await h.plugin.invoke(h.req("ADD"));
  h.faults.fail = { "DEL:net-b": 11 };
  const e = await cniError(h.plugin.invoke(h.req("DEL")));
  assert.equal(e.code, 11);
  assert.ok(await h.store.load(CONTAINER, "eth0"));
  h.faults.fail = {};
  await h.plugin.invoke(h.req("DEL"));
  assert.equal(await h.store.load(CONTAINER, "eth0"), null, "the retry finishes the job");
});

Deno.test("CHECK runs every attachment's chain against its cached result", async () => {
  await using h = await metaHarness();
  await h.plugin.invoke(h.req("ADD"));
  h.events.length = 0;
  await h.plugin.invoke(h.req("CHECK"));
  assert.deepEqual(calls(h.events, "CHECK").filter((c) => c.startsWith("main")), [
    "main:CHECK:net-a",
    "main:CHECK:net-b",
    "main:CHECK:net-c",
  ]);
  const checkA = h.events.find((e) => e.verb === "CHECK" && e.network === "net-a");
  assert.deepEqual(checkA?.prevResult?.interfaces?.map((i) => i.name), ["eth0"]);
});

Deno.test("CHECK of a container podplex never saw is code 3", async () => {
  await using h = await metaHarness();
  assert.equal((await cniError(h.plugin.invoke(h.req("CHECK")))).code, 3);
});

Deno.test("GC DELs pods not in the valid list and forwards the valid list expanded to net1, net2", async () => {
  await using h = await metaHarness();
  await h.plugin.invoke(h.req("ADD"));
  await h.plugin.invoke(h.req("ADD", { containerId: "ppgone" }));
  h.events.length = 0;
  const conf = h.conf({
    "cni.dev/valid-attachments": [{ containerID: CONTAINER, ifname: "eth0" }],
  });
  await h.plugin.invoke({ command: "GC", conf, env: { path: [] } });
  assert.deepEqual(calls(h.events, "DEL").filter((c) => c.startsWith("main")), [
    "main:DEL:net-c",
    "main:DEL:net-b",
    "main:DEL:net-a",
  ]);
  assert.equal(await h.store.load("ppgone", "eth0"), null);
  assert.ok(await h.store.load(CONTAINER, "eth0"));
  const gc = h.events.filter((e) => e.verb === "GC" && e.who === "main");
  assert.ok(gc.length >= 1, "every known network gets GC");
  for (const e of gc) {
    assert.deepEqual(e.valid, [
      { containerID: CONTAINER, ifname: "eth0" },
      { containerID: CONTAINER, ifname: "eth0" },
      { containerID: CONTAINER, ifname: "net1" },
      { containerID: CONTAINER, ifname: "net2" },
    ]);
  }
});

Deno.test("GC without the valid list is refused, not read as 'nothing is valid'", async () => {
  await using h = await metaHarness();
  await h.plugin.invoke(h.req("ADD"));
  h.events.length = 0;
  const e = await cniError(h.plugin.invoke({ command: "GC", conf: h.conf(), env: { path: [] } }));
  assert.equal(e.code, 7);
  assert.deepEqual(calls(h.events, "DEL"), []);
});
