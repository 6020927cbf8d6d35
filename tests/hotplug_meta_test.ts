/**
 * Hot-plug at the meta-plugin's level, in-process, as root: a pod ADDed by the meta-plugin
 * (real netns, bridges, veths, host-local leases, state on disk), then its annotation changed
 * and `Root.hotplug` run, as the daemon's controller and `pod attach` run it.
 */
import assert from "node:assert/strict";
import type { PluginRequest } from "../delegates/types.ts";
import { createRoot, type Root } from "../cli/root.ts";
import { NETWORKS_ANNOTATION } from "../meta/annotations.ts";
import { POD_ANNOTATIONS_ARG } from "../meta/context.ts";
import { createStateStore, type PodState } from "../meta/state.ts";
import type { HotplugChange } from "../meta/hotplug.ts";
import { isRoot, linkExists, run } from "./testutils.ts";
import {
  addrsOf,
  bridgePorts,
  type HotplugNetworks,
  hotplugNetworks,
  leases,
  podLinks,
  ppdName,
  ppdNetns,
  stateNames,
} from "./_hotplug_rig.ts";

const CID = "ppdpod1";

function conf(f: HotplugNetworks, annotations?: Record<string, string>): Uint8Array {
  const c: Record<string, unknown> = {
    cniVersion: "1.1.0",
    name: "podplex",
    type: "podplex",
    clusterNetwork: "default/net-a",
    networksDir: f.networksDir,
    stateDir: f.stateDir,
  };
  if (annotations) c.runtimeConfig = { [POD_ANNOTATIONS_ARG]: annotations };
  return new TextEncoder().encode(JSON.stringify(c));
}

function req(command: PluginRequest["command"], c: Uint8Array, netns: string): PluginRequest {
  return {
    command,
    conf: c,
    env: {
      containerId: CID,
      netns,
      ifname: "eth0",
      args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=ppdpod",
      path: ["/usr/lib/cni"],
    },
  };
}

async function state(f: HotplugNetworks): Promise<PodState> {
  const s = await createStateStore(f.stateDir).load(CID, "eth0");
  assert.ok(s, "the pod has a state");
  return s;
}

/** Runs a hot-plug to `networks` (undefined: no annotation), returning its changes. */
async function plug(
  root: Root,
  f: HotplugNetworks,
  networks: string | undefined,
): Promise<HotplugChange[]> {
  const annotations: Record<string, string> = networks === undefined
    ? {}
    : { [NETWORKS_ANNOTATION]: networks };
  const out = await root.hotplug({ state: await state(f), annotations });
  return out.changes;
}

const summary = (cs: HotplugChange[]) =>
  cs.map((c) => `${c.kind} ${c.network}@${c.ifname}${c.error ? ` failed: ${c.error.code}` : ""}`);

Deno.test({
  name: "hot-plug adds net-b@data1 to a running pod and removes it again, releasing its lease",
  ignore: !isRoot,
  async fn() {
    await using f = await hotplugNetworks(3, 10);
    await using ns = await ppdNetns();
    const root = createRoot();
    const plugin = await root.meta();
    await plugin.invoke(req("ADD", conf(f, { [NETWORKS_ANNOTATION]: "net-c" }), ns.path));
    assert.deepEqual(await podLinks(ns.name), ["eth0", "net1"]);

    const added = await plug(root, f, "net-c,net-b@data1");
    assert.deepEqual(summary(added), ["add default/net-b@data1"]);
    assert.deepEqual(await addrsOf(ns.name, "data1"), [`${f.prefix(1)}.2/24`]);
    assert.deepEqual(await podLinks(ns.name), ["data1", "eth0", "net1"]);
    const s = await state(f);
    assert.deepEqual(s.attachments.map((a) => a.ifname), ["eth0", "net1", "data1"]);
    assert.equal(s.attachments.some((a) => a.pending), false);
    const status = s.networkStatus as Array<{ name: string; interface: string; ips: string[] }>;
    assert.deepEqual(status.find((e) => e.interface === "data1")?.ips, [`${f.prefix(1)}.2`]);
    assert.equal(leases(f.dataDir).length, 3);

    // Nothing changes when nothing changed.
    assert.deepEqual(await plug(root, f, "net-c,net-b@data1"), []);
    const removed = await plug(root, f, "net-c");
    assert.deepEqual(summary(removed), ["remove default/net-b@data1"]);
    assert.deepEqual(await podLinks(ns.name), ["eth0", "net1"]);
    assert.deepEqual(leases(f.dataDir).map((l) => l.split("/")[0]).sort(), ["net-a", "net-c"]);
    assert.deepEqual((await state(f)).attachments.map((a) => a.ifname), ["eth0", "net1"]);
    // The host side of data1's veth went with it.
    assert.deepEqual((await bridgePorts([f.bridges[1]])).length, 0);

    await plugin.invoke(req("DEL", conf(f), ns.path));
    assert.deepEqual(await podLinks(ns.name), []);
    assert.deepEqual(leases(f.dataDir), []);
    assert.deepEqual(stateNames(f.stateDir), []);
  },
});

Deno.test({
  name: "hot-plug plugs an unnamed element in as the lowest free netN and unplugs it (#63, #43)",
  ignore: !isRoot,
  async fn() {
    await using f = await hotplugNetworks(4, 20);
    await using ns = await ppdNetns();
    const root = createRoot();
    const plugin = await root.meta();
    // No networks annotation at ADD (#43).
    await plugin.invoke(req("ADD", conf(f), ns.path));
    assert.deepEqual(summary(await plug(root, f, "net-b@net2")), ["add default/net-b@net2"]);
    assert.deepEqual(summary(await plug(root, f, "net-b@net2,net-c")), ["add default/net-c@net1"]);
    assert.deepEqual(summary(await plug(root, f, "net-b@net2,net-c,net-d")), [
      "add default/net-d@net3",
    ]);
    assert.deepEqual(await podLinks(ns.name), ["eth0", "net1", "net2", "net3"]);
    // The unnamed net-c goes; net-d keeps net3 (names never move).
    assert.deepEqual(summary(await plug(root, f, "net-b@net2,net-d")), [
      "remove default/net-c@net1",
    ]);
    assert.deepEqual(await podLinks(ns.name), ["eth0", "net2", "net3"]);
    // The whole annotation removed: only the cluster network stays.
    assert.deepEqual(summary(await plug(root, f, undefined)), [
      "remove default/net-d@net3",
      "remove default/net-b@net2",
    ]);
    assert.deepEqual(await podLinks(ns.name), ["eth0"]);
    assert.deepEqual(leases(f.dataDir).map((l) => l.split("/")[0]), ["net-a"]);
    await plugin.invoke(req("DEL", conf(f), ns.path));
    assert.deepEqual(leases(f.dataDir), []);
  },
});

Deno.test({
  name: "hot-plug of an unknown network or a failing chain changes nothing else and leaves nothing",
  ignore: !isRoot,
  async fn() {
    await using f = await hotplugNetworks(2, 30);
    // net-x: a bridge (which makes its veth and takes a lease), then a plugin that is missing.
    await Deno.writeTextFile(
      `${f.networksDir}/default/net-x.json`,
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "net-x",
        plugins: [
          {
            type: "bridge",
            bridge: f.bridges[1],
            ipam: { type: "host-local", subnet: `${f.prefix(5)}.0/24`, dataDir: f.dataDir },
          },
          { type: "ppd-no-such-plugin" },
        ],
      }),
    );
    await using ns = await ppdNetns();
    const root = createRoot();
    const plugin = await root.meta();
    await plugin.invoke(req("ADD", conf(f, { [NETWORKS_ANNOTATION]: "net-b" }), ns.path));
    const before = await state(f);
    const leasesBefore = leases(f.dataDir);

    const unknown = await plug(root, f, "net-b,nope@data1");
    assert.deepEqual(summary(unknown), ["add default/nope@data1 failed: 100"]);
    assert.match(unknown[0].error!.message, /default\/nope/);
    const failing = await plug(root, f, "net-b,net-x@data2");
    assert.deepEqual(summary(failing), ["add default/net-x@data2 failed: 7"]);
    assert.equal(failing[0].error!.details, undefined); // the rollback itself went well
    assert.match(failing[0].error!.message, /ppd-no-such-plugin/);
    assert.equal(await linkExists(ns.name, "data2"), false);
    assert.deepEqual(await podLinks(ns.name), ["eth0", "net1"]);
    assert.deepEqual(leases(f.dataDir), leasesBefore);
    const after = await state(f);
    assert.deepEqual(after.attachments, before.attachments);
    // An element asking for a held interface is refused; the valid one beside it is plugged.
    const mixed = await plug(root, f, "net-b,net-a@eth0,net-a@data3");
    assert.deepEqual(summary(mixed), [
      "add default/net-a@eth0 failed: 7",
      "add default/net-a@data3",
    ]);
    await plugin.invoke(req("DEL", conf(f), ns.path));
    assert.deepEqual(await podLinks(ns.name), []);
    assert.deepEqual(leases(f.dataDir), []);
    assert.deepEqual(stateNames(f.stateDir), []);
  },
});

Deno.test({
  name:
    "hot-plug finishes an attachment a killed podplex left pending (and its stray link), then diffs again",
  ignore: !isRoot,
  async fn() {
    await using f = await hotplugNetworks(3, 40);
    await using ns = await ppdNetns();
    const root = createRoot();
    const plugin = await root.meta();
    await plugin.invoke(req("ADD", conf(f), ns.path));
    await plug(root, f, "net-b@data1");
    // As a podplex killed in the middle of data1's ADD leaves it: recorded, marked.
    const store = createStateStore(f.stateDir);
    const s = await state(f);
    s.attachments[1].pending = "add";
    await store.save(s);
    // ...and a link it was creating, still under its temporary name, in the pod's group.
    const stray = ppdName("t");
    await run("ip", "link", "add", stray, "type", "veth", "peer", "name", ppdName("h"));
    await run("ip", "link", "set", stray, "netns", ns.name);
    await run("ip", "-n", ns.name, "link", "set", stray, "group", String(s.linkGroup));
    const changes = await plug(root, f, "net-b@data1");
    assert.deepEqual(summary(changes), ["remove default/net-b@data1", "add default/net-b@data1"]);
    assert.deepEqual(await podLinks(ns.name), ["data1", "eth0"]);
    assert.equal(leases(f.dataDir).length, 2);
    assert.equal((await state(f)).attachments.some((a) => a.pending), false);
    await plugin.invoke(req("DEL", conf(f), ns.path));
    assert.deepEqual(leases(f.dataDir), []);
  },
});
