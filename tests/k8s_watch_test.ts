/**
 * The watched Kubernetes state (clients/k8s/watch.ts) against tests/k8s_fake_server.ts, which
 * stands in for kube-apiserver (none is installable here): its LIST and WATCH follow the API
 * server's protocol (one resourceVersion counter, a WATCH from a version streams the changes
 * after it, BOOKMARK events, 410 Gone for a compacted version in the stream or as the HTTP
 * status). Reads after the first LIST need no request; changes arrive by the watch; a
 * bookmark's version is where a dropped watch resumes; 410 makes a new LIST; a broken watch
 * sends reads to GET.
 */
import assert from "node:assert/strict";
import { createKubeClient } from "../clients/k8s/client.ts";
import { watchedKube, type WatchedKubeClient } from "../clients/k8s/watch.ts";
import { type FakeKubeApi, startFakeKubeApi } from "./k8s_fake_server.ts";
import { tempDir } from "./testutils.ts";

async function kubeconfig(dir: string, url: string): Promise<string> {
  const path = `${dir}/kc`;
  await Deno.writeTextFile(
    path,
    `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${url}"}}]\n` +
      `users: [{name: u, user: {token: t}}]\n` +
      `contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`,
  );
  return path;
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const gets = (api: FakeKubeApi) =>
  api.requests.filter((r) => r.method === "GET" && /\/namespaces\//.test(r.path)).length;
const watches = (api: FakeKubeApi) => api.requests.filter((r) => /watch=1/.test(r.query));

async function setup(): Promise<{ api: FakeKubeApi; kube: WatchedKubeClient } & AsyncDisposable> {
  const api = await startFakeKubeApi();
  const dir = await tempDir("pptwatch");
  api.addPod("default", "web", { "k8s.v1.cni.cncf.io/networks": "lan" }, "node-1");
  api.addPod("default", "far", {}, "node-2");
  api.addNad("default", "lan", `{"cniVersion":"1.0.0","type":"bridge"}`);
  const kube = watchedKube(createKubeClient({ kubeconfig: await kubeconfig(dir.path, api.url) }), {
    nodeName: "node-1",
    backoffMs: 20,
  });
  await until("both caches live", () => kube.sizes().podsLive && kube.sizes().nadsLive);
  return {
    api,
    kube,
    async [Symbol.asyncDispose]() {
      kube.close();
      await api.stop();
      await dir[Symbol.asyncDispose]();
    },
  };
}

Deno.test("watched reads: this node's pods and every NAD from the cache, changes by the watch", async () => {
  await using s = await setup();
  const { api, kube } = s;
  assert.deepEqual(kube.sizes(), { pods: 1, nads: 1, podsLive: true, nadsLive: true });
  const pod = await kube.getPod("default", "web");
  assert.deepEqual(pod?.annotations, { "k8s.v1.cni.cncf.io/networks": "lan" });
  assert.equal(
    (await kube.getNad("default", "lan"))?.config,
    `{"cniVersion":"1.0.0","type":"bridge"}`,
  );
  assert.equal(gets(api), 0, "no GET: both came from the cache");
  const lists = api.requests.filter((r) => !/watch=1/.test(r.query) && !/namespaces/.test(r.path));
  assert.deepEqual(lists.map((r) => r.query), ["fieldSelector=spec.nodeName%3Dnode-1", ""]);

  api.setPodAnnotations("default", "web", { "k8s.v1.cni.cncf.io/networks": "lan,lan2" });
  api.addPod("default", "new", { a: "1" }, "node-1");
  api.addNad("default", "lan2", `{"cniVersion":"1.0.0","type":"macvlan"}`);
  api.deleteNad("default", "lan");
  await until("the changes", () => kube.sizes().pods === 2 && kube.stats.events >= 4);
  assert.equal(
    (await kube.getPod("default", "web"))?.annotations["k8s.v1.cni.cncf.io/networks"],
    "lan,lan2",
  );
  assert.deepEqual((await kube.getPod("default", "new"))?.annotations, { a: "1" });
  assert.equal(
    (await kube.getNad("default", "lan2"))?.config,
    `{"cniVersion":"1.0.0","type":"macvlan"}`,
  );
  assert.equal(gets(api), 0);
  // Not in the cache: another node's pod, a pod of another UID, a NAD just deleted: GET.
  assert.deepEqual((await kube.getPod("default", "far"))?.annotations, {});
  assert.notEqual(await kube.getPod("default", "web", "some-other-uid"), null);
  assert.equal(await kube.getNad("default", "lan"), null);
  assert.equal(gets(api), 3);
  assert.deepEqual(kube.stats.gets, { pods: 2, nads: 1 });
  assert.equal(kube.stats.hits.pods + kube.stats.hits.nads, 5);
});

Deno.test("a dropped watch resumes from the last bookmark's version, without a new LIST", async () => {
  await using s = await setup();
  const { api, kube } = s;
  const before = watches(api).length;
  api.addPod("other", "x", {}, "node-2"); // not ours: only a bookmark tells the version
  api.watch.bookmark();
  const rv = String(api.watch.rv);
  await until("the bookmark", () => kube.stats.events >= 2);
  api.watch.endWatches();
  await until("two new watches", () => watches(api).length >= before + 2);
  const resumed = watches(api).slice(before).map((r) => new URLSearchParams(r.query));
  assert(resumed.every((q) => q.get("allowWatchBookmarks") === "true"));
  assert(resumed.some((q) => q.get("resourceVersion") === rv), JSON.stringify(resumed.map(String)));
  assert.equal(kube.stats.lists, 2, "no relist");
});

Deno.test("410 Gone in the stream, or as the HTTP status, makes a new LIST that sees what changed", async () => {
  await using s = await setup();
  const { api, kube } = s;
  // In the stream: the history is compacted and the open watches are told 410.
  api.addPod("default", "gap", { seen: "by the list" }, "node-1");
  api.watch.expireWatches();
  await until("relisted", () => kube.stats.lists >= 4 && kube.sizes().podsLive);
  assert.deepEqual((await kube.getPod("default", "gap"))?.annotations, { seen: "by the list" });
  // As the status: a watch that resumes from a compacted version is refused with 410.
  // (The watches end; before they come back a change is made and compacted away.)
  api.watch.goneAsStatus = true;
  api.watch.endWatches();
  api.addPod("default", "gap2", {}, "node-1");
  api.watch.compact();
  await until("relisted again", () => kube.stats.lists >= 6 && kube.sizes().pods === 3);
  assert.equal(gets(api), 0);
  assert.equal(kube.stats.errors, 0, "410 is not an error: it is a relist");
});

Deno.test("with the watch broken (API server gone), reads go to GET and fail as without a cache", async () => {
  await using s = await setup();
  const { api, kube } = s;
  await api.stop();
  await until("not live", () => !kube.sizes().podsLive);
  await assert.rejects(kube.getPod("default", "web"), /Cannot reach the Kubernetes API/);
  assert(kube.stats.errors >= 1);
});
