/**
 * `podplex install` as a process on the host (the container image runs the same flow in
 * tests/image_test.ts): the DaemonSet's watch loop against a fake host root, the atomic
 * artifact copy over a running install, the pruning of old payloads, and the installed copy
 * serving a built-in type through its alias.
 */
import { entryVersion } from "../cli/_install_artifact.ts";
import { deepStrictEqual as assertEquals, match, ok } from "node:assert/strict";
import {
  checkWatchFlow,
  fakeHost,
  loopbackAddThrough,
  SERVICE_ENV,
  watched,
} from "./_install_flow.ts";
import { isRoot, run, tempNetns } from "./testutils.ts";

const LAUNCHER = new URL("../bin/podplex", import.meta.url).pathname;

function spawnInstall(exe: string, args: string[], env: Record<string, string> = {}) {
  const child = new Deno.Command(exe, {
    args: ["install", ...args],
    env: { ...SERVICE_ENV, ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return watched(child);
}

const hostArgs = (h: { bin: string; confDir: string; saDir: string }) => [
  "--bin-dir",
  h.bin,
  "--conf-dir",
  h.confDir,
  "--service-account-dir",
  h.saDir,
];

Deno.test("install --watch: artifact, kubeconfig, late default conf, rotation, change, SIGTERM cleanup", async () => {
  await using h = await fakeHost();
  const run = spawnInstall(LAUNCHER, [...hostArgs(h), "--watch", "--cleanup-config-on-exit"]);
  try {
    await checkWatchFlow(h, run, 10_000);
  } finally {
    await run.stop().catch(() => {});
  }
});

Deno.test("install replaces a running install's entry by rename and prunes old payloads", async () => {
  await using h = await fakeHost();
  await Deno.writeTextFile(
    `${h.confDir}/10-a.conf`,
    `{"cniVersion":"1.0.0","name":"a","type":"bridge"}`,
  );
  const once = spawnInstall(LAUNCHER, hostArgs(h));
  assertEquals(await once.child.status.then((s) => s.code), 0);
  const entry = await Deno.readTextFile(`${h.bin}/podplex`);
  const version = entryVersion(entry)!;
  // The installed copy runs (its deno and chunks are open) while a second install replaces it.
  const running = spawnInstall(`${h.bin}/podplex`, [...hostArgs(h), "--watch"]);
  try {
    for (let i = 0; i < 200 && !/runs payload/.test(running.output()); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    // Two stale payloads (the older is pruned, the newer kept for calls still loading chunks
    // from it) and a temp dir an install died with.
    for (const [name, age] of [["0000000000aa", 200], ["0000000000bb", 100]] as const) {
      await Deno.mkdir(`${h.bin}/podplex.d/${name}`);
      const t = new Date(Date.now() - age * 1000);
      await Deno.utime(`${h.bin}/podplex.d/${name}`, t, t);
    }
    await Deno.mkdir(`${h.bin}/podplex.d/.dead.tmp-1`);

    const again = spawnInstall(LAUNCHER, [...hostArgs(h), "--builtins"]);
    assertEquals(await again.child.status.then((s) => s.code), 0, again.output());
    await again.stop();
    match(again.output(), /already there/);
    match(again.output(), /pruned .*0000000000aa/);
  } finally {
    assertEquals(await running.stop(), 0, running.output());
  }
  const left = Array.from(Deno.readDirSync(`${h.bin}/podplex.d`), (e) => e.name).sort();
  assertEquals(left, ["0000000000bb", version]);
  assertEquals(await Deno.readLink(`${h.bin}/loopback`), "podplex");
  const names = Array.from(Deno.readDirSync(h.bin), (e) => e.name);
  ok(!names.some((n) => n.startsWith(".")), `no temp entries left: ${names}`);
});

Deno.test({
  name: "the installed copy serves a built-in type through its alias, from /",
  ignore: !isRoot,
  async fn() {
    await using h = await fakeHost();
    await using ns = await tempNetns("ppn");
    await Deno.writeTextFile(
      `${h.confDir}/10-a.conf`,
      `{"cniVersion":"1.0.0","name":"a","type":"bridge"}`,
    );
    const inst = spawnInstall(LAUNCHER, [...hostArgs(h), "--builtins"]);
    assertEquals(await inst.child.status.then((s) => s.code), 0);
    await inst.stop();
    await run("ip", "-n", ns.name, "link", "set", "lo", "down");
    await loopbackAddThrough(h.bin, ns.path);
    match(await run("ip", "-n", ns.name, "link", "show", "lo"), /UP/);
  },
});

Deno.test("install writes a cniVersion the node's runtime reads: 1.0.0 alone, the default conf's, the flag's", async () => {
  await using h = await fakeHost();
  const once = async (...args: string[]) => {
    const r = spawnInstall(LAUNCHER, [...hostArgs(h), ...args]);
    const code = await r.child.status.then((s) => s.code);
    await r.stop();
    return { code, output: r.output() };
  };
  const written = async () =>
    JSON.parse(await Deno.readTextFile(`${h.confDir}/00-podplex.conflist`)).cniVersion;

  // No default conf to wrap: what containerd 1.6/1.7 read (a 1.1.0 list failed every pod).
  const alone = await once("--cluster-network", "kube-system/cluster");
  assertEquals(alone.code, 0, alone.output);
  assertEquals(await written(), "1.0.0");
  match(alone.output, /cniVersion 1\.0\.0/);

  // An explicit cluster network still takes the default conf's version.
  await Deno.writeTextFile(
    `${h.confDir}/10-a.conf`,
    `{"cniVersion":"0.4.0","name":"a","type":"bridge"}`,
  );
  assertEquals((await once("--cluster-network", "kube-system/cluster")).code, 0);
  assertEquals(await written(), "0.4.0");

  assertEquals((await once("--cni-version", "1.1.0")).code, 0);
  assertEquals(await written(), "1.1.0");

  const bad = await once("--cni-version", "1.2");
  ok(bad.code !== 0, "an unknown version is refused");
  match(bad.output, /--cni-version "1\.2" is not a CNI version/);
  assertEquals(await written(), "1.1.0", "a refused run leaves the conflist as it was");
});
