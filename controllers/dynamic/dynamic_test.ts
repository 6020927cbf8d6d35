import assert from "node:assert/strict";
import type { KubeClient, PodInfo } from "../../clients/k8s/client.ts";
import type { PodChange } from "../../clients/k8s/watch.ts";
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION } from "../../meta/annotations.ts";
import type { HotplugRequest } from "../../meta/hotplug.ts";
import { createStateStore, type PodState } from "../../meta/state.ts";
import { tempDir } from "../../tests/testutils.ts";
import { flush, testContext } from "../testing.ts";
import { type DynamicContext, LockBusy, startDynamicNetworks } from "./dynamic.ts";

// No root, no API server: a fake watched client (GET, PATCH, Events, onPods) and a fake root
// whose hot-plug records what it was asked. The real hot-plug on real netns is in
// tests/hotplug_*_test.ts.

const CONF = {
  cniVersion: "1.0.0",
  name: "podplex",
  type: "podplex",
  kubeconfig: "/nonexistent/ppk-kubeconfig",
  clusterNetwork: "default/cluster",
};

function state(id: string, pod: string): PodState {
  return {
    version: 1,
    containerId: id,
    netns: `/run/netns/ppk-${id}`,
    ifname: "eth0",
    podNamespace: "default",
    podName: pod,
    podUid: `uid-${pod}`,
    createdAt: new Date(0).toISOString(),
    attachments: [],
    networkStatus: [],
    hotplug: { conf: CONF, path: ["/opt/cni/bin"] },
  };
}

/** The fake watched API client. */
class FakeKube implements KubeClient {
  pods = new Map<string, PodInfo>();
  patches: string[] = [];
  events: Array<{ reason?: unknown }> = [];
  listeners: Array<(c: PodChange) => void> = [];
  getPod(ns: string, name: string): Promise<PodInfo | null> {
    return Promise.resolve(this.pods.get(`${ns}/${name}`) ?? null);
  }
  getNad(): Promise<null> {
    return Promise.resolve(null);
  }
  patchPodAnnotations(ns: string, name: string): Promise<void> {
    this.patches.push(`${ns}/${name}`);
    return Promise.resolve();
  }
  createEvent(_ns: string, e: Record<string, unknown>): Promise<void> {
    this.events.push(e);
    return Promise.resolve();
  }
  onPods(l: (c: PodChange) => void): () => void {
    this.listeners.push(l);
    return () => void (this.listeners = this.listeners.filter((x) => x !== l));
  }
  /** Sets a pod's networks annotation and tells the watchers. */
  annotate(name: string, networks: string): void {
    const annotations = { [NETWORKS_ANNOTATION]: networks, [NETWORK_STATUS_ANNOTATION]: "[]" };
    const pod = { annotations, uid: `uid-${name}` };
    this.pods.set(`default/${name}`, pod);
    for (const l of this.listeners) l({ type: "MODIFIED", key: `default/${name}`, pod });
  }
}

async function setup(o: { busy?: boolean } = {}) {
  const ctx = testContext();
  const dir = await tempDir("ppk-dyn");
  await createStateStore(dir.path).save(state("c1", "p1"));
  const kube = new FakeKube();
  kube.annotate("p1", "net-a");
  const asked: string[] = [];
  const lock = { busy: o.busy ?? false };
  const dctx: DynamicContext = {
    ...ctx,
    stateDirs: [dir.path],
    nodeName: "n1",
    lock: (_id, fn) => lock.busy ? Promise.reject(new LockBusy("full")) : fn(),
    root: {
      kube: () => Promise.resolve(kube),
      kubeClients: () => [kube],
      hotplug: async (req: HotplugRequest) => {
        asked.push(req.annotations[NETWORKS_ANNOTATION]);
        await req.onChange?.({ kind: "add", network: "default/net-a", ifname: "net1" }, req.state);
        return { state: req.state, changes: [] };
      },
    },
  };
  const dyn = startDynamicNetworks(dctx);
  // The start's own look reads the state dir (real I/O): let it finish.
  await flush();
  await new Promise((r) => setTimeout(r, 100));
  await dyn.idle();
  return { ctx, dir, kube, asked, dyn, lock };
}

Deno.test("dynamic controller: a pod found at start is hot-plugged once, with status and Event", async () => {
  const { dir, kube, asked, dyn } = await setup();
  await using _ = dir;
  assert.deepEqual(asked, ["net-a"]);
  assert.deepEqual(kube.patches, ["default/p1"], "network-status written after the change");
  assert.equal(kube.events[0]?.reason, "AddedInterface");
  assert.equal(dyn.stats.changes, 1);
  await dyn.close();
});

Deno.test("dynamic controller: a watch event acts only when the networks annotation changed", async () => {
  const { dir, kube, asked, dyn } = await setup();
  await using _ = dir;
  kube.annotate("p1", "net-a"); // a status change: same annotations
  await flush();
  await dyn.idle();
  assert.deepEqual(asked, ["net-a"]);
  kube.annotate("p1", "net-a,net-b");
  await flush();
  await dyn.idle();
  assert.deepEqual(asked, ["net-a", "net-a,net-b"]);
  await dyn.close();
});

Deno.test("dynamic controller: a pod the daemon was too busy for is tried again a second later on ctx.clock", async () => {
  const { ctx, dir, asked, dyn, lock } = await setup({ busy: true });
  await using _ = dir;
  assert.deepEqual(asked, [], "refused by the lock");
  lock.busy = false;
  await ctx.clock.advance(999);
  await dyn.idle();
  assert.deepEqual(asked, []);
  await ctx.clock.advance(1);
  await flush();
  await dyn.idle();
  assert.deepEqual(asked, ["net-a"]);
  await dyn.close();
});

Deno.test("dynamic controller: close() twice, no timer left, then reconcile() and events do nothing", async () => {
  const { ctx, dir, kube, asked, dyn, lock } = await setup({ busy: true });
  lock.busy = false;
  await using _ = dir;
  await dyn.close();
  await dyn.close();
  assert.equal(ctx.clock.pending, 0, "the poll and the retry are cancelled");
  assert.equal(kube.listeners.length, 0, "unsubscribed from the pod watch");
  await dyn.reconcile();
  kube.annotate("p1", "net-c");
  await ctx.clock.advance(5000);
  await dyn.idle();
  assert.deepEqual(asked, []);
});
