/**
 * The meta-plugin end to end, in-process, as root: real netns, real bridges and veths made by
 * the built-in delegates, host-local leases on disk, state on disk.
 *
 * The API server here is `tests/k8s_fake_server.ts`: no kube-apiserver is installable on
 * this machine, so a small local HTTP server speaking GET pod / GET NAD / PATCH pod stands in.
 */
import assert from "node:assert/strict";
import { CniError } from "../conf/errors.ts";
import type { PluginRequest } from "../delegates/types.ts";
import { createRoot } from "../cli/root.ts";
import {
  type BridgeNetworks,
  bridgeNetworks,
  ipJson,
  isRoot,
  leaseFiles,
  linkExists,
  stateFiles,
  tempNetns,
} from "./testutils.ts";
import { startFakeKubeApi } from "./k8s_fake_server.ts";

const enc = new TextEncoder();

/** Awaits `fn`, which must throw a CniError, and returns the error. */
async function rejectsCni(fn: () => Promise<unknown>): Promise<CniError> {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof CniError, `expected a CniError, got ${e}`);
    return e;
  }
  throw new assert.AssertionError({ message: "expected a CniError, nothing was thrown" });
}

type Fixture = BridgeNetworks;

/** A networks dir with `count` bridge networks `net-a`, `net-b`... in namespace `default`. */
function fixture(count = 3): Promise<Fixture> {
  return bridgeNetworks(count, "10.77");
}

function podplexConf(f: Fixture, extra: Record<string, unknown> = {}): Uint8Array {
  return enc.encode(JSON.stringify({
    cniVersion: "1.1.0",
    name: "podplex",
    type: "podplex",
    clusterNetwork: "default/net-a",
    defaultNetworks: ["default/net-b", "default/net-c"],
    networksDir: f.networksDir,
    stateDir: f.stateDir,
    ...extra,
  }));
}

function req(
  command: PluginRequest["command"],
  conf: Uint8Array,
  netns: string,
  containerId = "ppcontainer1",
): PluginRequest {
  return {
    command,
    conf,
    env: {
      containerId,
      netns,
      ifname: "eth0",
      args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod1",
      path: ["/usr/lib/cni"],
    },
  };
}

async function addrsOf(ns: string, dev: string): Promise<string[]> {
  const [link] = await ipJson(ns, "addr", "show", "dev", dev);
  const infos = (link?.addr_info ?? []) as Array<
    { family: string; local: string; prefixlen: number }
  >;
  return infos.filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`);
}

Deno.test({
  name: "meta ADD gives a pod eth0, net1 and net2 and DEL releases everything",
  ignore: !isRoot,
  async fn() {
    await using f = await fixture();
    await using ns = await tempNetns();
    const plugin = await createRoot().meta();
    const conf = podplexConf(f);
    const result = await plugin.invoke(req("ADD", conf, ns.path));
    assert.deepEqual(await addrsOf(ns.name, "eth0"), ["10.77.0.2/24"]);
    assert.deepEqual(await addrsOf(ns.name, "net1"), ["10.77.1.2/24"]);
    assert.deepEqual(await addrsOf(ns.name, "net2"), ["10.77.2.2/24"]);
    const ips = result!.ips as Array<{ address: string; interface: number }>;
    const ifaces = result!.interfaces as Array<{ name: string }>;
    assert.deepEqual(ips.map((i) => [i.address, ifaces[i.interface].name]), [
      ["10.77.0.2/24", "eth0"],
      ["10.77.1.2/24", "net1"],
      ["10.77.2.2/24", "net2"],
    ]);
    assert.deepEqual(leaseFiles(f.dataDir).length, 3);
    assert.deepEqual(stateFiles(f.stateDir), ["ppcontainer1@eth0.json"]);

    await plugin.invoke(req("CHECK", conf, ns.path));
    await plugin.invoke(req("DEL", conf, ns.path));
    for (const dev of ["eth0", "net1", "net2"]) assert(!(await linkExists(ns.name, dev)), dev);
    assert.deepEqual(leaseFiles(f.dataDir), []);
    assert.deepEqual(stateFiles(f.stateDir), []);
    await plugin.invoke(req("DEL", conf, ns.path)); // a second DEL is fine
  },
});

Deno.test({
  name: "meta ADD rolls back the first two networks when the third fails",
  ignore: !isRoot,
  async fn() {
    await using f = await fixture();
    // net-c's range holds no free address: its IPAM fails after net-a and net-b succeeded.
    await Deno.writeTextFile(
      `${f.networksDir}/default/net-c.json`,
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "net-c",
        type: "bridge",
        bridge: f.bridges[2],
        ipam: {
          type: "host-local",
          subnet: "10.77.2.0/24",
          rangeStart: "10.77.2.9",
          rangeEnd: "10.77.2.9",
          dataDir: f.dataDir,
        },
      }),
    );
    await Deno.mkdir(`${f.dataDir}/net-c`, { recursive: true });
    await Deno.writeTextFile(`${f.dataDir}/net-c/10.77.2.9`, "someoneelse\r\neth0");
    await using ns = await tempNetns();
    const plugin = await createRoot().meta();
    const err = await rejectsCni(() => plugin.invoke(req("ADD", podplexConf(f), ns.path)));
    assert(err.message.includes("default/net-c"), err.message);
    for (const dev of ["eth0", "net1", "net2"]) assert(!(await linkExists(ns.name, dev)), dev);
    assert.deepEqual(leaseFiles(f.dataDir), ["net-c/10.77.2.9"]);
    assert.deepEqual(stateFiles(f.stateDir), []);
  },
});

Deno.test({
  name: "meta DEL releases every IP after the netns is gone and the API server stopped",
  ignore: !isRoot,
  async fn() {
    await using f = await fixture(2);
    await using api = await startFakeKubeApi({ token: "pp-token" });
    api.addPod("default", "pod1", { "k8s.v1.cni.cncf.io/networks": "net-b@ppsec0" });
    const kubeconfig = `${f.dir}/kubeconfig`;
    await Deno.writeTextFile(
      kubeconfig,
      [
        "apiVersion: v1",
        "kind: Config",
        "current-context: pp",
        "contexts: [{name: pp, context: {cluster: pp, user: pp}}]",
        `clusters: [{name: pp, cluster: {server: "${api.url}"}}]`,
        "users: [{name: pp, user: {token: pp-token}}]",
      ].join("\n"),
    );
    const conf = podplexConf(f, { defaultNetworks: [], kubeconfig });
    const plugin = await createRoot().meta();
    const ns = await tempNetns();
    try {
      await plugin.invoke(req("ADD", conf, ns.path));
      assert.deepEqual(await addrsOf(ns.name, "ppsec0"), ["10.77.1.2/24"]);
      const patched = api.requests.filter((r) => r.method === "PATCH");
      assert.deepEqual(patched.length, 1);
    } finally {
      await ns[Symbol.asyncDispose]();
    }
    await api.stop();
    assert.deepEqual(leaseFiles(f.dataDir).length, 2);
    await plugin.invoke(req("DEL", conf, ns.path));
    assert.deepEqual(leaseFiles(f.dataDir), []);
    assert.deepEqual(stateFiles(f.stateDir), []);
  },
});

Deno.test({
  name: "meta GC removes exactly the stale attachments",
  ignore: !isRoot,
  async fn() {
    await using f = await fixture(2);
    const conf = podplexConf(f, { defaultNetworks: ["default/net-b"] });
    const plugin = await createRoot().meta();
    await using keep = await tempNetns();
    await using stale = await tempNetns();
    await plugin.invoke(req("ADD", conf, keep.path, "ppkeep"));
    await plugin.invoke(req("ADD", conf, stale.path, "ppstale"));
    assert.deepEqual(leaseFiles(f.dataDir).length, 4);
    const gcConf = JSON.parse(new TextDecoder().decode(conf));
    gcConf["cni.dev/valid-attachments"] = [{ containerID: "ppkeep", ifname: "eth0" }];
    await plugin.invoke({
      command: "GC",
      conf: enc.encode(JSON.stringify(gcConf)),
      env: { path: ["/usr/lib/cni"] },
    });
    assert.deepEqual(stateFiles(f.stateDir), ["ppkeep@eth0.json"]);
    const leases = leaseFiles(f.dataDir);
    assert.deepEqual(leases.length, 2);
    for (const l of leases) {
      assert.deepEqual((await Deno.readTextFile(`${f.dataDir}/${l}`)).split("\r\n")[0], "ppkeep");
    }
    assert(await linkExists(keep.name, "net1"));
    assert(!(await linkExists(stale.name, "eth0")));
    await plugin.invoke(req("DEL", conf, keep.path, "ppkeep"));
    assert.deepEqual(leaseFiles(f.dataDir), []);
  },
});

Deno.test({
  name: "meta ADD of a network that does not exist names it and every place searched",
  ignore: !isRoot,
  async fn() {
    await using f = await fixture(1);
    await using ns = await tempNetns();
    const plugin = await createRoot().meta();
    const conf = podplexConf(f, { defaultNetworks: ["default/nope"] });
    const err = await rejectsCni(() => plugin.invoke(req("ADD", conf, ns.path)));
    assert.deepEqual(err.code, 100);
    assert(err.message.includes(`${f.networksDir}/default/nope.yaml`), err.message);
    assert(!(await linkExists(ns.name, "eth0")));
    assert.deepEqual(leaseFiles(f.dataDir), []);
  },
});

Deno.test({
  name: "meta ADD refuses a network that delegates to podplex itself, leaving nothing",
  ignore: !isRoot,
  async fn() {
    await using f = await fixture(1);
    await Deno.writeTextFile(
      `${f.networksDir}/default/loop.json`,
      JSON.stringify({ cniVersion: "1.0.0", name: "loop", type: "podplex" }),
    );
    await using ns = await tempNetns();
    const plugin = await createRoot().meta();
    const conf = podplexConf(f, { defaultNetworks: ["default/loop"] });
    const err = await rejectsCni(() => plugin.invoke(req("ADD", conf, ns.path)));
    assert.equal(err.code, 7);
    assert.match(err.message, /default\/loop.*delegates to "podplex" itself/);
    assert.ok(!(await linkExists(ns.name, "eth0")));
    assert.deepEqual(leaseFiles(f.dataDir), []);
    assert.deepEqual(stateFiles(f.stateDir), []);
  },
});

Deno.test({
  name: "meta ADD with a CNI_NETNS that is not a netns is code 8 and leaves no state; DEL succeeds",
  ignore: !isRoot,
  async fn() {
    await using f = await fixture(1);
    const plugin = await createRoot().meta();
    const conf = podplexConf(f, { defaultNetworks: [] });
    const notNetns = `${f.dir}/plain-file`;
    await Deno.writeTextFile(notNetns, "");
    for (const path of [notNetns, "/proc/self/ns/mnt"]) {
      const err = await rejectsCni(() => plugin.invoke(req("ADD", conf, path)));
      assert.equal(err.code, 8, `${path}: ${err.message}`);
      assert.match(err.message, /not a network namespace/);
      assert.deepEqual(stateFiles(f.stateDir), []);
      assert.deepEqual(leaseFiles(f.dataDir), []);
      await plugin.invoke(req("DEL", conf, path));
    }
  },
});
