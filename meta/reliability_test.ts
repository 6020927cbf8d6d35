/**
 * The DEL, rollback and state defects of the reliability pass (issue 10), each pinned by a
 * test that failed before its fix: stateless DEL per network, delegate failures returned,
 * the failing chain's own earlier plugins undone, corrupt state and temp files cleaned.
 */
import assert from "node:assert/strict";
import { calls, cniError, CONTAINER, metaHarness } from "./_testing.ts";

Deno.test("DEL without state skips a network that no longer resolves and releases the others", async () => {
  await using h = await metaHarness();
  await Deno.remove(`${h.networksDir}/default/net-b.conflist`);
  await h.plugin.invoke(h.req("DEL"));
  const dels = h.events.filter((e) => e.who === "main" && e.verb === "DEL");
  assert.deepEqual(dels.map((e) => [e.network, e.ifname]), [["net-c", "net2"], ["net-a", "eth0"]]);
});

Deno.test("DEL without state returns a delegate's failure after trying every other network", async () => {
  await using h = await metaHarness({}, { fail: { "DEL:net-b": 11 } });
  const e = await cniError(h.plugin.invoke(h.req("DEL")));
  assert.equal(e.code, 11);
  assert.deepEqual(calls(h.events, "DEL").filter((c) => c.startsWith("main")), [
    "main:DEL:net-c",
    "main:DEL:net-b",
    "main:DEL:net-a",
  ]);
});

Deno.test("a failed ADD undoes the plugins of the failing chain that ran, past one never found", async () => {
  await using h = await metaHarness({ "net-b": ["ppfake", "ppmissing"] });
  const e = await cniError(h.plugin.invoke(h.req("ADD")));
  assert.equal(e.code, 7, "a missing plugin is a config error");
  // net-b's ppfake ran (and would hold an address): its DEL must run although the chain's
  // next plugin was never found.
  assert.ok(calls(h.events, "DEL").includes("main:DEL:net-b"), calls(h.events).join(" "));
  assert.equal(await h.store.load(CONTAINER, "eth0"), null, "nothing is left for a retry to leak");
});

Deno.test("the runtime's DEL after a failed rollback undoes only what ran", async () => {
  await using h = await metaHarness({ "net-b": ["ppfake", "ppmissing"] }, {
    fail: { "DEL:net-a": 5 },
  });
  await cniError(h.plugin.invoke(h.req("ADD")));
  const kept = await h.store.load(CONTAINER, "eth0");
  assert.equal(kept?.attachments[1].pluginsRan, 1, "the state says how far net-b's chain got");
  h.faults.fail = {};
  h.events.length = 0;
  await h.plugin.invoke(h.req("DEL"));
  assert.ok(calls(h.events, "DEL").includes("main:DEL:net-b"));
  assert.equal(await h.store.load(CONTAINER, "eth0"), null);
});

Deno.test("DEL releases from the conf and removes a corrupt state file", async () => {
  await using h = await metaHarness();
  await h.plugin.invoke(h.req("ADD"));
  const file = `${h.stateDir}/${CONTAINER}@eth0.json`;
  await Deno.writeTextFile(file, '{"version": 1, "contai');
  h.events.length = 0;
  await h.plugin.invoke(h.req("DEL"));
  assert.equal(calls(h.events, "DEL").filter((c) => c.startsWith("main")).length, 3);
  assert.equal(await Deno.stat(file).then(() => true, () => false), false);
});

Deno.test("DEL removes the pod's orphan temp state files; GC removes old ones of any pod", async () => {
  await using h = await metaHarness();
  await h.plugin.invoke(h.req("ADD"));
  await h.plugin.invoke(h.req("ADD", { containerId: "ppother" }));
  const mine = `${h.stateDir}/.${CONTAINER}@eth0.json.tmp-1a2b`;
  const other = `${h.stateDir}/.ppother@eth0.json.tmp-3c4d`;
  await Deno.writeTextFile(mine, "{");
  await Deno.writeTextFile(other, "{");
  await h.plugin.invoke(h.req("DEL"));
  assert.equal(await Deno.stat(mine).then(() => true, () => false), false);
  assert.equal(await Deno.stat(other).then(() => true, () => false), true, "not this pod's");
  const old = new Date(Date.now() - 3_600_000);
  await Deno.utime(other, old, old);
  const conf = h.conf({
    "cni.dev/valid-attachments": [{ containerID: "ppother", ifname: "eth0" }],
  });
  await h.plugin.invoke({ command: "GC", conf, env: { path: [] } });
  assert.equal(await Deno.stat(other).then(() => true, () => false), false);
  assert.ok(await h.store.load("ppother", "eth0"), "a valid pod's state stays");
});

Deno.test("GC releases and removes a corrupt state file of a pod not in the valid list", async () => {
  await using h = await metaHarness();
  await Deno.mkdir(h.stateDir, { recursive: true });
  const file = `${h.stateDir}/ppdead@eth0.json`;
  await Deno.writeTextFile(file, "not json");
  const conf = h.conf({ "cni.dev/valid-attachments": [] });
  await h.plugin.invoke({ command: "GC", conf, env: { path: [] } });
  const dels = h.events.filter((e) => e.who === "main" && e.verb === "DEL");
  assert.deepEqual(dels.map((e) => e.network), ["net-c", "net-b", "net-a"]);
  assert.equal(await Deno.stat(file).then(() => true, () => false), false);
});

Deno.test("GC keeps a corrupt state file of a pod in the valid list", async () => {
  await using h = await metaHarness();
  await Deno.mkdir(h.stateDir, { recursive: true });
  const file = `${h.stateDir}/ppalive@eth0.json`;
  await Deno.writeTextFile(file, "not json");
  const conf = h.conf({
    "cni.dev/valid-attachments": [{ containerID: "ppalive", ifname: "eth0" }],
  });
  await h.plugin.invoke({ command: "GC", conf, env: { path: [] } });
  assert.equal(calls(h.events, "DEL").length, 0);
  assert.ok(await Deno.stat(file));
});

Deno.test("a FIFO in place of a state file does not hold DEL: it is released from the conf and removed", async () => {
  await using h = await metaHarness();
  await Deno.mkdir(h.stateDir, { recursive: true });
  const fifo = `${h.stateDir}/${CONTAINER}@eth0.json`;
  const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
  assert.ok(mk.success);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error("DEL hung on a FIFO")), 10_000);
  });
  try {
    await Promise.race([h.plugin.invoke(h.req("DEL")), hung]);
  } finally {
    clearTimeout(timer);
  }
  assert.equal(calls(h.events, "DEL").filter((c) => c.startsWith("main")).length, 3);
  assert.equal(await Deno.lstat(fifo).then(() => true, () => false), false);
});

/** Replaces the recorded conf of attachment `i` in the pod's state file with `text`. */
async function corruptEntry(stateDir: string, i: number, text: string): Promise<void> {
  const file = `${stateDir}/${CONTAINER}@eth0.json`;
  const state = JSON.parse(await Deno.readTextFile(file));
  state.attachments[i].confText = text;
  await Deno.writeTextFile(file, JSON.stringify(state));
}

Deno.test("DEL releases a corrupt state entry through its network's current definition", async () => {
  await using h = await metaHarness();
  await h.plugin.invoke(h.req("ADD"));
  await corruptEntry(h.stateDir, 1, '{"cniVersion": "1.1.0", "name": "net-b", "plug');
  h.events.length = 0;
  await h.plugin.invoke(h.req("DEL"));
  // Every attachment released, net-b's IPAM too (it held an address), chains in reverse.
  assert.deepEqual(calls(h.events, "DEL"), [
    "ipam:DEL:net-c",
    "main:DEL:net-c",
    "ipam:DEL:net-b",
    "main:DEL:net-b",
    "ipam:DEL:net-a",
    "main:DEL:net-a",
  ]);
  const netB = h.events.find((e) => e.verb === "DEL" && e.network === "net-b");
  assert.ok(netB?.prevResult, "the recorded ADD result is still the cached result");
  assert.equal(await h.store.load(CONTAINER, "eth0"), null, "nothing left to undo: state gone");
  assert.match(h.warnings.join("\n"), /"default\/net-b" \("net1"\) does not decode/);
});

Deno.test("a corrupt entry whose network is gone too is reported after the others were released", async () => {
  await using h = await metaHarness();
  await h.plugin.invoke(h.req("ADD"));
  await corruptEntry(h.stateDir, 2, "not json");
  await Deno.remove(`${h.networksDir}/default/net-c.conflist`);
  h.events.length = 0;
  const e = await cniError(h.plugin.invoke(h.req("DEL")));
  assert.equal(e.code, 6, e.message);
  assert.match(JSON.stringify(e), /net-c.*does not decode/);
  assert.deepEqual(calls(h.events, "DEL").filter((c) => c.startsWith("main")), [
    "main:DEL:net-b",
    "main:DEL:net-a",
  ]);
  assert.ok(await h.store.load(CONTAINER, "eth0"), "the state stays: net-c is left to undo");
  // The definition back: the runtime's retry finishes the job.
  await Deno.writeTextFile(
    `${h.networksDir}/default/net-c.conflist`,
    JSON.stringify({
      cniVersion: "1.1.0",
      name: "net-c",
      plugins: [{ type: "ppfake" }, { type: "ppfakeipam" }],
    }),
  );
  await h.plugin.invoke(h.req("DEL"));
  assert.equal(await h.store.load(CONTAINER, "eth0"), null);
});
