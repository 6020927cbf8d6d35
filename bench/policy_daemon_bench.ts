/**
 * The network policy controller's benchmark (part of `deno task bench`, or alone:
 * `deno run -A bench/policy_daemon_bench.ts [--rounds N]`), with the daemon's own code: the
 * controller (controllers/policy) on the real API client, against the fake API server of the
 * tests (tests/k8s_fake_server.ts; no kube-apiserver can run here), tables applied through
 * libnftables into real netns.
 *
 * - change → enforced: 100 local pods (netns `ppf-b<i>`) and 50 policies in force (each
 *   selecting a tenth of the pods, peers by label); a policy selecting every pod is created
 *   (or deleted) on the server, and the time until the last of the 100 tables that must
 *   change is written is taken. Target p50 ≤ 100 ms.
 * - memory: in a child process, the controller knowing 1,000 pods (100 of them local) and
 *   200 policies: heap and RSS after a GC, synced, against before it started. Target growth
 *   ≤ 20 MiB.
 *
 * Needs root (netns). Writes `bench/results/policy-daemon-latest.json`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { createKubeClient } from "../clients/k8s/client.ts";
import { runNftIn } from "../ffi/nftables.ts";
import { startNetworkPolicy } from "../controllers/policy/policy.ts";
import { testContext } from "../controllers/testing.ts";
import { systemClock } from "../controllers/controller.ts";
import { stateOf } from "../controllers/policy/_testing.ts";
import type { PodState } from "../meta/state.ts";
import { type FakeKubeApi, startFakeKubeApi } from "../tests/k8s_fake_server.ts";
import { summarize, type Summary } from "./_stats.ts";

const NP = "/apis/networking.k8s.io/v1/networkpolicies";
const NS = "/api/v1/namespaces";
const MiB = 1024 * 1024;

/** What it measured. */
export interface PolicyDaemonBench {
  pods: number;
  policies: number;
  /** ms from the policy's creation/deletion on the server to the last table written. */
  add: Summary;
  remove: Summary;
  /** Of `add`: ms in libnftables (the 100 tables written). */
  nft: Summary;
  /** A peer pod's address changed: ms until the 100 pods' peer sets hold the new one. */
  peer: Summary;
  /** Of `peer`: ms in libnftables. */
  peerNft: Summary;
  /** Tables written as set updates (the peer rounds). */
  updates: number;
  /** MiB grown: the heap in use, the heap V8 holds (used or not), the process RSS. */
  memory: { pods: number; policies: number; heapMiB: number; totalMiB: number; rssMiB: number };
}

function ipOf(i: number): string {
  return `10.227.${Math.floor(i / 250)}.${(i % 250) + 2}`;
}

/** `count` pods in namespace bench (group g0..g9), the first `local` on this node. */
function seed(api: FakeKubeApi, pods: number, policies: number): void {
  api.put(NS, { metadata: { name: "bench", labels: { team: "a" } } });
  for (let i = 0; i < pods; i++) {
    const name = `p${i}`;
    api.addPod("bench", name, {}, "node-1");
    api.setPodExtras("bench", name, {
      labels: { app: name, group: `g${i % 10}` },
      podIPs: [ipOf(i)],
      ports: [{ name: "http", containerPort: 80 }],
    });
  }
  for (let k = 0; k < policies; k++) {
    api.put(NP, {
      metadata: { namespace: "bench", name: `bg${k}` },
      spec: {
        podSelector: { matchLabels: { group: `g${k % 10}` } },
        ingress: [{
          from: [{ podSelector: { matchLabels: { group: `g${(k + 1) % 10}` } } }],
          ports: [{ port: 8000 + k }],
        }],
      },
    });
  }
}

function localStates(count: number): PodState[] {
  return Array.from({ length: count }, (_, i) => {
    const s = stateOf("bench", `p${i}`, ipOf(i));
    s.netns = `/run/netns/ppf-b${i}`;
    return s;
  });
}

function kubeconfig(url: string): string {
  return `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${url}"}}]\n` +
    `users: [{name: u, user: {token: t}}]\n` +
    `contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`;
}

async function sh(...args: string[]): Promise<void> {
  const o = await new Deno.Command(args[0], { args: args.slice(1), stderr: "piped" }).output();
  if (!o.success) throw new Error(`${args.join(" ")}: ${new TextDecoder().decode(o.stderr)}`);
}

/** Change → enforced in 100 pods, with 50 policies in force. */
async function changeToEnforced(rounds: number, dir: string) {
  const pods = 100;
  const api = await startFakeKubeApi();
  seed(api, pods, 50);
  await Deno.writeTextFile(`${dir}/kubeconfig`, kubeconfig(api.url));
  for (let i = 0; i < pods; i++) await sh("ip", "netns", "add", `ppf-b${i}`);
  const client = createKubeClient({ kubeconfig: `${dir}/kubeconfig` });
  /** netns → when its table was last written, and the script written. */
  const seen = new Map<string, { at: number; script: string }>();
  const c = await startNetworkPolicy({
    ...testContext(),
    clock: systemClock,
    api: client,
    nodeName: "node-1",
    states: () => Promise.resolve(localStates(pods)),
    apply(netns, script) {
      const t = performance.now();
      runNftIn(netns, script);
      applyMs += performance.now() - t;
      seen.set(netns, { at: performance.now(), script });
      return Promise.resolve();
    },
  });
  const all = "bench/all ";
  const allHave = (want: boolean | string) =>
    [...Array(pods).keys()].every((i) => {
      const script = seen.get(`/run/netns/ppf-b${i}`)?.script ?? "";
      return typeof want === "string" ? script.includes(want) : script.includes(all) === want;
    });
  /** Waits until every table names the policy (or not), or `want`; when the last was written. */
  const wait = async (want: boolean | string) => {
    const end = Date.now() + 30_000;
    while (!allHave(want)) {
      if (Date.now() > end) throw new Error("the change was not enforced in 30 s");
      await new Promise((r) => setTimeout(r, 1));
    }
    return Math.max(...[...seen.values()].map((s) => s.at));
  };
  const add: number[] = [];
  const remove: number[] = [];
  const peer: number[] = [];
  const peerNft: number[] = [];
  /** ms spent in libnftables in each add round (the rest is the controller and the watch). */
  const applies: number[] = [];
  let applyMs = 0;
  try {
    await wait(false);
    for (let r = 0; r < rounds; r++) {
      let t0 = performance.now();
      api.put(NP, {
        metadata: { namespace: "bench", name: "all" },
        spec: { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {} }] }] },
      });
      applyMs = 0;
      add.push(await wait(true) - t0);
      applies.push(applyMs);
      t0 = performance.now();
      api.remove(NP, "bench/all");
      remove.push(await wait(false) - t0);
    }
    // A peer of every pod (on another node) changes its address: 100 peer sets updated.
    api.addPod("bench", "remote", {}, "node-2");
    api.setPodExtras("bench", "remote", { podIPs: ["10.227.9.1"], labels: { app: "remote" } });
    api.put(NP, {
      metadata: { namespace: "bench", name: "all" },
      spec: { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {} }] }] },
    });
    await wait("10.227.9.1");
    for (let r = 0; r < rounds; r++) {
      const ip = `10.227.9.${2 + r}`;
      const t0 = performance.now();
      applyMs = 0;
      api.setPodExtras("bench", "remote", { podIPs: [ip] });
      peer.push(await wait(`${ip} }`) - t0);
      peerNft.push(applyMs);
    }
  } finally {
    await c.close();
    client.close();
    await api.stop();
    for (let i = 0; i < pods; i++) await sh("ip", "netns", "del", `ppf-b${i}`).catch(() => {});
  }
  return {
    pods,
    policies: 50,
    add: summarize(add),
    remove: summarize(remove),
    nft: summarize(applies),
    peer: summarize(peer),
    peerNft: summarize(peerNft),
    updates: c.stats.updates,
  };
}

/**
 * The child: a controller synced against a small API server first (20 pods, 5 policies: the
 * code loaded and compiled, as in a daemon that has run a while), then one knowing `pods`
 * pods and `policies` policies; prints the MiB grown between the two.
 */
async function memoryChild(emptyUrl: string, url: string, dir: string) {
  const gc = (globalThis as { gc?: () => void }).gc!;
  const run = async (server: string) => {
    await Deno.writeTextFile(`${dir}/kubeconfig`, kubeconfig(server));
    const client = createKubeClient({ kubeconfig: `${dir}/kubeconfig` });
    const c = await startNetworkPolicy({
      ...testContext(),
      clock: systemClock,
      api: client,
      nodeName: "node-1",
      states: () => Promise.resolve(localStates(100)),
      apply: () => Promise.resolve(),
    });
    while (!c.synced) await new Promise((r) => setTimeout(r, 10));
    await c.idle();
    return { c, client };
  };
  const warm = await run(emptyUrl);
  await warm.c.close();
  warm.client.close();
  gc();
  const before = Deno.memoryUsage();
  const { c } = await run(url);
  gc();
  const after = Deno.memoryUsage();
  console.log(JSON.stringify({
    heapMiB: (after.heapUsed - before.heapUsed) / MiB,
    totalMiB: (after.heapTotal - before.heapTotal) / MiB,
    rssMiB: (after.rss - before.rss) / MiB,
    renders: c.stats.renders,
  }));
  Deno.exit(0);
}

async function memory(dir: string) {
  const empty = await startFakeKubeApi();
  seed(empty, 20, 5);
  const api = await startFakeKubeApi();
  seed(api, 1000, 200);
  try {
    const o = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--v8-flags=--expose-gc",
        new URL(import.meta.url).pathname,
        "--memory-child",
        `${empty.url},${api.url}`,
        "--dir",
        dir,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!o.success) throw new Error("the memory child failed");
    const r = JSON.parse(new TextDecoder().decode(o.stdout).trim().split("\n").at(-1)!);
    return {
      pods: 1000,
      policies: 200,
      heapMiB: r.heapMiB,
      totalMiB: r.totalMiB,
      rssMiB: r.rssMiB,
    };
  } finally {
    await api.stop();
    await empty.stop();
  }
}

const f = (x: number) => x.toFixed(1);

/** The report, each figure beside its target. */
export function policyDaemonReport(r: PolicyDaemonBench): string {
  const ok = (b: boolean) => (b ? "yes" : "no");
  return [
    `network policy controller (${r.pods} local pods, ${r.policies} policies in force)`,
    `  change -> enforced in every selected pod, policy created: p50 ${f(r.add.p50)} ms, ` +
    `p90 ${f(r.add.p90)} ms (n=${r.add.n}; target p50 <= 100 ms: ${ok(r.add.p50 <= 100)}); ` +
    `of which libnftables writing the ${r.pods} tables: p50 ${f(r.nft.p50)} ms`,
    `  change -> enforced in every selected pod, policy deleted: p50 ${f(r.remove.p50)} ms, ` +
    `p90 ${f(r.remove.p90)} ms (target p50 <= 100 ms: ${ok(r.remove.p50 <= 100)})`,
    `  a peer pod's address changes -> updated in the ${r.pods} pods' peer sets: p50 ` +
    `${f(r.peer.p50)} ms, p90 ${f(r.peer.p90)} ms, of which libnftables p50 ` +
    `${f(r.peerNft.p50)} ms (no target; ${r.updates} tables written as updates in all)`,
    `  memory with ${r.memory.pods} pods and ${r.memory.policies} policies known: heap in use +` +
    `${f(r.memory.heapMiB)} MiB, heap held by V8 +${f(r.memory.totalMiB)} MiB, RSS +` +
    `${f(r.memory.rssMiB)} MiB (target RSS <= 20 MiB: ${ok(r.memory.rssMiB <= 20)})`,
  ].join("\n");
}

/** Runs both parts; writes `policy-daemon-latest.json` into `outDir`. */
export async function policyDaemonBench(
  opts: { rounds: number; outDir: string },
): Promise<PolicyDaemonBench> {
  const dir = await Deno.makeTempDir({ prefix: "ppf-bench" });
  try {
    const change = await changeToEnforced(opts.rounds, dir);
    const r: PolicyDaemonBench = { ...change, memory: await memory(dir) };
    await Deno.writeTextFile(
      `${opts.outDir}/policy-daemon-latest.json`,
      JSON.stringify(r, null, 2),
    );
    return r;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string", default: "20" },
      "memory-child": { type: "string" },
      dir: { type: "string" },
    },
  });
  if (values["memory-child"]) {
    const [empty, loaded] = values["memory-child"].split(",");
    await memoryChild(empty, loaded, values.dir!);
  }
  const out = new URL("./results/", import.meta.url).pathname;
  console.log(
    policyDaemonReport(await policyDaemonBench({ rounds: Number(values.rounds), outDir: out })),
  );
  Deno.exit(0);
}
