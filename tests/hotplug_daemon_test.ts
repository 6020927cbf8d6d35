/**
 * `podplex serve --dynamic-networks` end to end, as root: pods ADDed through the daemon (real
 * netns, bridges, veths, host-local leases), their networks annotation changed on the API
 * server, and the kernel, the leases, the state, network-status and the Events checked.
 *
 * The API server is tests/k8s_fake_server.ts: no kube-apiserver is installable here, so a
 * small local server speaking the endpoints podplex uses (pods LIST/WATCH/GET/PATCH, NADs,
 * Events) stands in. Needs `deno task build`.
 */
import assert from "node:assert/strict";
import { NETWORKS_ANNOTATION } from "../meta/annotations.ts";
import { isRoot } from "./testutils.ts";
import { eventsOf, hotplugNode, statusInterfaces, waitFor } from "./_hotplug_daemon.ts";
import { addrsOf, leases, podLinks, ppdNetns, stateNames } from "./_hotplug_rig.ts";

const nets = (v: string) => ({ [NETWORKS_ANNOTATION]: v });

Deno.test({
  name:
    "dynamic networks: an annotation change plugs net-b@data1 in and out, with status and Events",
  ignore: !isRoot,
  async fn() {
    await using node = await hotplugNode(4, 60);
    const { api, f } = node;
    await using ns = await ppdNetns();
    api.addPod("default", "ppdweb", nets("net-c"));
    const add = await node.cni("ADD", "ppdc1", "ppdweb", ns.path);
    assert.equal(add.code, 0, add.stdout + add.stderr);
    assert.deepEqual(await podLinks(ns.name), ["eth0", "net1"]);
    await waitFor("the ADD's network-status", () => statusInterfaces(api, "ppdweb").length === 2);

    api.setPodAnnotations("default", "ppdweb", {
      ...api.pods.get("default/ppdweb")!.annotations,
      ...nets("net-c,net-b@data1"),
    });
    await waitFor(
      "data1 in network-status",
      () => statusInterfaces(api, "ppdweb").includes("data1"),
    );
    assert.deepEqual(await podLinks(ns.name), ["data1", "eth0", "net1"]);
    assert.deepEqual(await addrsOf(ns.name, "data1"), [`${f.prefix(1)}.2/24`]);
    assert.deepEqual(eventsOf(api, "ppdweb"), [
      `AddedInterface Add data1 [${f.prefix(1)}.2/24] from default/net-b`,
    ]);
    const ev = api.events[0];
    assert.equal(ev.type, "Normal");
    assert.equal((ev.involvedObject as { uid?: string }).uid, undefined); // no K8S_POD_UID sent

    const change = (v: string) =>
      api.setPodAnnotations("default", "ppdweb", {
        ...api.pods.get("default/ppdweb")!.annotations,
        ...nets(v),
      });
    change("net-c");
    await waitFor(
      "data1 gone from network-status",
      () => !statusInterfaces(api, "ppdweb").includes("data1"),
    );
    assert.deepEqual(await podLinks(ns.name), ["eth0", "net1"]);
    assert.deepEqual(leases(f.dataDir).map((l) => l.split("/")[0]), ["net-a", "net-c"]);
    assert.equal(eventsOf(api, "ppdweb")[1], "RemovedInterface Remove data1 from default/net-b");

    // An element without an interface: net2 (the lowest free), then unplugged by name (#63).
    change("net-c,net-d");
    await waitFor("net2", () => statusInterfaces(api, "ppdweb").includes("net2"));
    change("net-c");
    await waitFor("net2 gone", () => !statusInterfaces(api, "ppdweb").includes("net2"));
    assert.deepEqual(await podLinks(ns.name), ["eth0", "net1"]);

    // An unknown network: a Warning naming it, nothing else changed.
    const before = eventsOf(api, "ppdweb").length;
    change("net-c,nope@data9");
    await waitFor("the Warning", () => eventsOf(api, "ppdweb").length > before);
    const warn = api.events.at(-1)!;
    assert.equal(warn.type, "Warning");
    assert.equal(warn.reason, "FailedAddingInterface");
    assert.match(String(warn.message), /data9 from default\/nope: .*default\/nope/);
    assert.deepEqual(await podLinks(ns.name), ["eth0", "net1"]);
    assert.deepEqual(statusInterfaces(api, "ppdweb"), ["eth0", "net1"]);
    // Not retried while the annotation stays (no hot loop): a status PATCH (MODIFIED) or a
    // re-LIST does not make it try again.
    api.watch.expireWatches();
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(eventsOf(api, "ppdweb").length, before + 1);

    const metrics = await node.metrics();
    assert.match(metrics, /^podplex_hotplug_changes_total 4$/m);
    assert.match(metrics, /^podplex_hotplug_failures_total 1$/m);
    // The network appears; a restart of the daemon tries the same annotation again.
    await Deno.writeTextFile(
      `${f.networksDir}/default/nope.json`,
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "nope",
        type: "bridge",
        bridge: f.bridges[1],
        ipam: { type: "host-local", subnet: `${f.prefix(8)}.0/24`, dataDir: f.dataDir },
      }),
    );
    const firstLog = node.daemon.log();
    await node.restart();
    await waitFor(
      "data9 after the restart",
      () => statusInterfaces(api, "ppdweb").includes("data9"),
    );
    assert.deepEqual(await podLinks(ns.name), ["data9", "eth0", "net1"]);

    // A pod being deleted is left alone.
    api.markPodDeleting("default", "ppdweb");
    change("net-c,net-b");
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(await podLinks(ns.name), ["data9", "eth0", "net1"]);

    const del = await node.cni("DEL", "ppdc1", "ppdweb", ns.path);
    assert.equal(del.code, 0, del.stdout + del.stderr);
    assert.deepEqual(await podLinks(ns.name), []);
    assert.deepEqual(leases(f.dataDir), []);
    assert.deepEqual(stateNames(f.stateDir), []);
    assert.match(firstLog, /ADD ppdc1 eth0: exit 0/); // served by the daemon
    assert.match(firstLog, /hot-plug of pod "default\/ppdweb": add default\/net-b/);
  },
});

Deno.test({
  name: "dynamic networks: a pod with no networks annotation at ADD is hot-plugged (#43)",
  ignore: !isRoot,
  async fn() {
    await using node = await hotplugNode(2, 70);
    const { api, f } = node;
    await using ns = await ppdNetns();
    api.addPod("default", "ppdbare");
    const add = await node.cni("ADD", "ppdc2", "ppdbare", ns.path);
    assert.equal(add.code, 0, add.stdout + add.stderr);
    api.setPodAnnotations("default", "ppdbare", {
      ...api.pods.get("default/ppdbare")!.annotations,
      ...nets("net-b"),
    });
    await waitFor("net1", () => statusInterfaces(api, "ppdbare").includes("net1"));
    assert.deepEqual(await addrsOf(ns.name, "net1"), [`${f.prefix(1)}.2/24`]);
    // Removing the annotation altogether unplugs it.
    const { [NETWORKS_ANNOTATION]: _, ...rest } = api.pods.get("default/ppdbare")!.annotations;
    api.setPodAnnotations("default", "ppdbare", rest);
    await waitFor("net1 gone", () => !statusInterfaces(api, "ppdbare").includes("net1"));
    assert.deepEqual(await podLinks(ns.name), ["eth0"]);
    assert.equal((await node.cni("DEL", "ppdc2", "ppdbare", ns.path)).code, 0);
    assert.deepEqual(leases(f.dataDir), []);
  },
});

Deno.test({
  name:
    "dynamic networks: a NAD from the API is hot-plugged; namespaceIsolation refuses another namespace's",
  ignore: !isRoot,
  async fn() {
    await using node = await hotplugNode(2, 75, { namespaceIsolation: true });
    const { api, f } = node;
    await using ns = await ppdNetns();
    api.addNad(
      "default",
      "ppd-nad",
      JSON.stringify({
        cniVersion: "1.0.0",
        type: "bridge",
        bridge: f.bridges[1],
        ipam: { type: "host-local", subnet: `${f.prefix(7)}.0/24`, dataDir: f.dataDir },
      }),
    );
    api.addNad("other", "ppd-far", JSON.stringify({ cniVersion: "1.0.0", type: "bridge" }));
    api.addPod("default", "ppdnad");
    assert.equal((await node.cni("ADD", "ppdc3", "ppdnad", ns.path)).code, 0);
    api.setPodAnnotations("default", "ppdnad", {
      ...api.pods.get("default/ppdnad")!.annotations,
      ...nets("ppd-nad@nad0"),
    });
    await waitFor("nad0", () => statusInterfaces(api, "ppdnad").includes("nad0"));
    assert.deepEqual(await addrsOf(ns.name, "nad0"), [`${f.prefix(7)}.2/24`]);
    assert.deepEqual(eventsOf(api, "ppdnad"), [
      `AddedInterface Add nad0 [${f.prefix(7)}.2/24] from default/ppd-nad`,
    ]);
    // Another namespace's NAD: refused by namespaceIsolation, as at ADD; nad0 stays.
    api.setPodAnnotations("default", "ppdnad", {
      ...api.pods.get("default/ppdnad")!.annotations,
      ...nets("ppd-nad@nad0,other/ppd-far@far0"),
    });
    await waitFor("the Warning", () => eventsOf(api, "ppdnad").length === 2);
    assert.match(
      eventsOf(api, "ppdnad")[1],
      /^FailedAddingInterface Cannot add far0 from other\/ppd-far: .*namespace/,
    );
    assert.deepEqual(await podLinks(ns.name), ["eth0", "nad0"]);
    assert.equal((await node.cni("DEL", "ppdc3", "ppdnad", ns.path)).code, 0);
    assert.deepEqual(leases(f.dataDir), []);
  },
});
