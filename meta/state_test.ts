import assert from "node:assert/strict";
import { tempDir } from "../tests/testutils.ts";
import { createStateStore, type PodState, writeAtomic } from "./state.ts";

function sample(containerId = "abc123", ifname = "eth0"): PodState {
  return {
    version: 1,
    containerId,
    netns: "/run/netns/x",
    ifname,
    podNamespace: "default",
    podName: "web",
    createdAt: "2024-01-01T00:00:00.000Z",
    attachments: [{
      network: "kube-system/flannel",
      ifname: "eth0",
      isCluster: true,
      isDefault: true,
      // odd spacing and key order: must come back byte for byte
      confText: '{ "type":"bridge",  "name":"x", "cniVersion":"1.0.0" }\n',
      cniArgs: "IgnoreUnknown=1;K8S_POD_NAME=web",
      result: { cniVersion: "1.1.0", ips: [{ address: "10.0.0.2/24" }] },
    }],
  };
}

Deno.test("StateStore round-trips a state with the conf text byte for byte", async () => {
  await using dir = await tempDir();
  const store = createStateStore(`${dir.path}/state`);
  const s = sample();
  await store.save(s);
  const back = await store.load("abc123", "eth0");
  assert.deepEqual(back, s);
  assert.deepEqual(back?.attachments[0].confText, s.attachments[0].confText);
});

Deno.test("StateStore creates its dir 0700 and files 0600", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/state`;
  await Deno.mkdir(path, { mode: 0o755 });
  await Deno.chmod(path, 0o755);
  const store = createStateStore(path);
  await store.save(sample());
  assert.deepEqual((await Deno.stat(path)).mode! & 0o777, 0o700);
  const files = await Array.fromAsync(Deno.readDir(path));
  assert.deepEqual(files.length, 1);
  assert.deepEqual((await Deno.stat(`${path}/${files[0].name}`)).mode! & 0o777, 0o600);
});

Deno.test("StateStore keys states by container id and runtime ifname", async () => {
  await using dir = await tempDir();
  const store = createStateStore(dir.path);
  await store.save(sample("c1", "eth0"));
  await store.save(sample("c1", "eth1"));
  await store.save(sample("c1-eth0", "x")); // must not collide with ("c1", "eth0-x")-like keys
  assert.deepEqual((await store.load("c1", "eth1"))?.ifname, "eth1");
  assert.deepEqual((await store.list()).map((s) => `${s.containerId}/${s.ifname}`), [
    "c1-eth0/x",
    "c1/eth0",
    "c1/eth1",
  ]);
});

Deno.test("StateStore.load() returns null for a missing state", async () => {
  await using dir = await tempDir();
  assert.deepEqual(await createStateStore(`${dir.path}/none`).load("c1", "eth0"), null);
});

Deno.test("StateStore.remove() removes a state and accepts a missing one", async () => {
  await using dir = await tempDir();
  const store = createStateStore(dir.path);
  await store.save(sample());
  await store.remove("abc123", "eth0");
  assert.deepEqual(await store.load("abc123", "eth0"), null);
  await store.remove("abc123", "eth0");
  await createStateStore(`${dir.path}/never`).remove("x", "eth0");
});

Deno.test("StateStore.load() turns a corrupt file into null and a warning", async () => {
  await using dir = await tempDir();
  const warnings: string[] = [];
  const store = createStateStore(dir.path, { warn: (m) => warnings.push(m) });
  await store.save(sample());
  const [file] = await Array.fromAsync(Deno.readDir(dir.path));
  await Deno.writeTextFile(`${dir.path}/${file.name}`, '{"version":1,"contai');
  assert.deepEqual(await store.load("abc123", "eth0"), null);
  assert.deepEqual(await store.list(), []);
  assert.deepEqual(warnings.length, 2);
  assert.deepEqual(warnings[0].includes("corrupt"), true);
});

Deno.test("StateStore never shows a partly written file after a crash before the rename", async () => {
  await using dir = await tempDir();
  const store = createStateStore(dir.path, { warn: () => {} });
  const old = sample();
  await store.save(old);
  const [file] = await Array.fromAsync(Deno.readDir(dir.path));
  // A crash mid-save leaves only a temp file beside the real one: simulate exactly that.
  await Deno.writeTextFile(`${dir.path}/.${file.name}.tmp-dead`, '{"version":1,"half');
  assert.deepEqual(await store.load("abc123", "eth0"), old);
  assert.deepEqual(await store.list(), [old]);
  // And a completed save replaces the whole file at once.
  const next = { ...old, netns: "/run/netns/y" };
  await store.save(next);
  assert.deepEqual(await store.load("abc123", "eth0"), next);
});

Deno.test("writeAtomic() leaves no temp file behind when the rename fails", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(`${dir.path}/target`); // renaming a file over a directory fails
  await assert.rejects(() => writeAtomic(`${dir.path}/target`, "x"));
  const names = (await Array.fromAsync(Deno.readDir(dir.path))).map((e) => e.name);
  assert.deepEqual(names, ["target"]);
});

Deno.test("StateStore rejects a container id that could escape the directory", async () => {
  await using dir = await tempDir();
  const store = createStateStore(dir.path);
  await assert.rejects(() => store.load("../etc", "eth0"));
  await assert.rejects(() => store.save(sample("a/b")));
});
