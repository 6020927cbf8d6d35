/**
 * The hot-plug controller under load and faults, as root, through `podplex serve
 * --dynamic-networks` (tests/_hotplug_daemon.ts; the fake API server stands in for
 * kube-apiserver): many pods through add/remove cycles, the daemon SIGKILLed at random points
 * of hot-plugs and restarted, a kubelet DEL racing a hot-plug. After each, every pod must be
 * consistent (its links, its state, its network-status and its annotation agree, nothing
 * pending) and, once the pods are DELeted, nothing may be left: no link, no bridge port, no
 * lease, no state file. PODPLEX_LONG=1 runs the long versions (20 pods × 10 cycles, 60 kills).
 * Needs `deno task build`.
 */
import assert from "node:assert/strict";
import { NETWORKS_ANNOTATION, planPodNetworks } from "../meta/annotations.ts";
import { diffAttachments } from "../meta/hotplug_diff.ts";
import { createStateStore } from "../meta/state.ts";
import { isRoot } from "./testutils.ts";
import { type HotplugNode, hotplugNode, statusInterfaces, waitFor } from "./_hotplug_daemon.ts";
import { bridgePorts, leases, podLinks, ppdNetns, stateNames } from "./_hotplug_rig.ts";

const LONG = Deno.env.get("PODPLEX_LONG") === "1";

interface Pod {
  name: string;
  id: string;
  ns: { name: string; path: string } & AsyncDisposable;
}

/** Why pod `p` is not consistent yet (undefined when it is). */
async function inconsistency(node: HotplugNode, p: Pod): Promise<string | undefined> {
  // The daemon renames a new state over the file while this reads it: read again then.
  const state = await createStateStore(node.f.stateDir, { warn: () => {} }).load(p.id, "eth0")
    .catch(() => undefined);
  if (state === undefined) return "state being replaced";
  if (!state) return "no state";
  if (state.attachments.some((a) => a.pending)) return "an attachment is pending";
  const annotations = node.api.pods.get(`default/${p.name}`)!.annotations;
  const wanted = planPodNetworks(annotations, "default", { defaultNetworkNamespace: "kube-system" })
    .secondary;
  const diff = diffAttachments(
    state.attachments.map((a) => ({ network: a.network, ifname: a.ifname, fixed: !a.selected })),
    wanted,
  );
  if (diff.add.length || diff.remove.length) return `diff: ${JSON.stringify(diff)}`;
  const ifnames = state.attachments.map((a) => a.ifname).sort();
  const links = await podLinks(p.ns.name);
  if (JSON.stringify(links) !== JSON.stringify(ifnames)) return `links ${links} vs ${ifnames}`;
  const status = statusInterfaces(node.api, p.name);
  if (JSON.stringify(status) !== JSON.stringify(ifnames)) return `status ${status} vs ${ifnames}`;
  return undefined;
}

async function allConsistent(node: HotplugNode, pods: Pod[], ms = 60_000): Promise<void> {
  let why: string | undefined;
  try {
    await waitFor("every pod consistent", async () => {
      for (const p of pods) {
        why = await inconsistency(node, p);
        if (why) {
          why = `${p.name}: ${why}`;
          return false;
        }
      }
      return true;
    }, ms);
  } catch (e) {
    throw new Error(`${(e as Error).message}: ${why}\n${node.daemon.log().slice(-3000)}`);
  }
}

function setNetworks(node: HotplugNode, p: Pod, value: string | undefined): void {
  const { [NETWORKS_ANNOTATION]: _, ...rest } = node.api.pods.get(`default/${p.name}`)!.annotations;
  node.api.setPodAnnotations(
    "default",
    p.name,
    value === undefined ? rest : { ...rest, [NETWORKS_ANNOTATION]: value },
  );
}

async function addPods(node: HotplugNode, count: number, tag: string): Promise<Pod[]> {
  const pods: Pod[] = [];
  for (let i = 0; i < count; i++) {
    const p = { name: `ppd${tag}${i}`, id: `ppd${tag}c${i}`, ns: await ppdNetns() };
    pods.push(p);
    node.api.addPod("default", p.name);
    const add = await node.cni("ADD", p.id, p.name, p.ns.path);
    assert.equal(add.code, 0, add.stdout + add.stderr);
  }
  return pods;
}

/** DELs every pod and checks that nothing at all is left. */
async function delAndCheckEmpty(node: HotplugNode, pods: Pod[]): Promise<void> {
  for (const p of pods) {
    const del = await node.cni("DEL", p.id, p.name, p.ns.path);
    assert.equal(del.code, 0, del.stdout + del.stderr);
    assert.deepEqual(await podLinks(p.ns.name), [], p.name);
  }
  assert.deepEqual(leases(node.f.dataDir), []);
  assert.deepEqual(stateNames(node.f.stateDir), []);
  assert.deepEqual(await bridgePorts(node.f.bridges), []);
}

async function disposeAll(pods: Pod[]): Promise<void> {
  for (const p of pods) await p.ns[Symbol.asyncDispose]();
}

Deno.test({
  name: "dynamic networks: 20 pods through add/remove cycles end with 0 leftovers",
  ignore: !isRoot,
  async fn() {
    await using node = await hotplugNode(4, 80);
    const pods = await addPods(node, 20, "m");
    try {
      const cycles = LONG ? 10 : 2;
      const shapes = ["net-b,net-c@data1", "net-d", "net-b@data2,net-d,net-c", undefined];
      for (let c = 0; c < cycles; c++) {
        for (const [i, p] of pods.entries()) setNetworks(node, p, shapes[(c + i) % 3]);
        await allConsistent(node, pods);
        for (const p of pods) setNetworks(node, p, shapes[3]);
        await allConsistent(node, pods);
        assert.equal(leases(node.f.dataDir).length, pods.length); // eth0's only
      }
      await delAndCheckEmpty(node, pods);
    } finally {
      await disposeAll(pods);
    }
  },
});

Deno.test({
  name:
    "dynamic networks: SIGKILLs of the daemon at random points of hot-plugs leave it consistent",
  ignore: !isRoot,
  async fn() {
    await using node = await hotplugNode(4, 90);
    const pods = await addPods(node, 3, "k");
    try {
      const kills = LONG ? 60 : 30;
      const cut = { pending: 0, temps: 0 };
      const shapes = ["net-b,net-c@data1,net-d", "net-d", undefined, "net-c,net-b@data1"];
      for (let k = 0; k < kills; k++) {
        for (const [i, p] of pods.entries()) setNetworks(node, p, shapes[(k + i) % shapes.length]);
        // Somewhere in the middle of the three pods' hot-plugs (each is 10-60 ms here).
        await new Promise((r) => setTimeout(r, Math.random() * 120));
        await node.daemon.stop("SIGKILL");
        // What the kill cut: an attachment marked pending, a temp file, a change not begun.
        const states = await createStateStore(node.f.stateDir, { warn: () => {} }).list();
        if (states.some((s) => s.attachments.some((a) => a.pending))) cut.pending++;
        if (stateNames(node.f.stateDir).some((n) => n.startsWith("."))) cut.temps++;
        await node.restart();
        await allConsistent(node, pods);
      }
      console.log(`${kills} kills: ${cut.pending} cut an attachment's ADD or DEL`);
      // The kills must have hit hot-plugs in flight, else this shows nothing.
      assert.ok(cut.pending > 0, "no kill landed in the middle of a hot-plug");
      await delAndCheckEmpty(node, pods);
    } finally {
      await disposeAll(pods);
    }
  },
});

/**
 * `net-slow`: a bridge, then a plugin that takes 300 ms on ADD (a slow delegate), so a DEL
 * run per call lands in the middle of its hot-plug.
 */
async function slowNetwork(node: HotplugNode): Promise<void> {
  const plugin = `${node.f.dir}/bin/ppd-slow`;
  await Deno.writeTextFile(
    plugin,
    `#!/bin/sh
# Passes prevResult on, after 300 ms on ADD.
input=$(cat)
case "$CNI_COMMAND" in
  ADD) sleep 0.3; printf '%s' "$input" | python3 -c 'import json,sys; c=json.load(sys.stdin); r=c["prevResult"]; r["cniVersion"]=c["cniVersion"]; print(json.dumps(r))';;
  VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}';;
esac
`,
  );
  await Deno.chmod(plugin, 0o755);
  await Deno.writeTextFile(
    `${node.f.networksDir}/default/net-slow.json`,
    JSON.stringify({
      cniVersion: "1.0.0",
      name: "net-slow",
      plugins: [
        {
          type: "bridge",
          bridge: node.f.bridges[2],
          ipam: { type: "host-local", subnet: `${node.f.prefix(5)}.0/24`, dataDir: node.f.dataDir },
        },
        { type: "ppd-slow" },
      ],
    }),
  );
}

Deno.test({
  name: "dynamic networks: a kubelet DEL racing a hot-plug leaves nothing behind",
  ignore: !isRoot,
  async fn() {
    await using node = await hotplugNode(3, 100);
    await slowNetwork(node);
    for (let round = 0; round < (LONG ? 30 : 9); round++) {
      const [p] = await addPods(node, 1, `r${round}`);
      try {
        const perCall = round % 3 === 2; // a DEL the shim ran itself: it takes no daemon lock
        setNetworks(node, p, perCall ? "net-slow@data1" : "net-b,net-c@data1");
        if (round % 3) {
          // The DEL arrives while the hot-plug runs: it waits for the pod's lock, then
          // removes the pod with what the hot-plug made.
          await waitFor("the hot-plug under way", async () => {
            const s = await createStateStore(node.f.stateDir, { warn: () => {} })
              .load(p.id, "eth0").catch(() => null);
            return !!s && s.attachments.length > 1;
          });
        } else await new Promise((r) => setTimeout(r, Math.random() * 60));
        const del = await node.cni("DEL", p.id, p.name, p.ns.path, perCall);
        assert.equal(del.code, 0, del.stdout + del.stderr);
        // A hot-plug queued behind the DEL finds no state and does nothing; one that ran beside
        // a per-call DEL finds the state gone and undoes what it made.
        // A hot-plug takes ~30 ms here (net-slow 330): what it does after the DEL is done by
        // then (generous for a loaded machine).
        await new Promise((r) => setTimeout(r, 800));
        assert.deepEqual(await podLinks(p.ns.name), [], `round ${round}`);
        assert.deepEqual(leases(node.f.dataDir), [], `round ${round}`);
        assert.deepEqual(stateNames(node.f.stateDir), [], `round ${round}`);
        assert.deepEqual(await bridgePorts(node.f.bridges), [], `round ${round}`);
        node.api.deletePod("default", p.name);
      } finally {
        await p.ns[Symbol.asyncDispose]();
      }
    }
  },
});
