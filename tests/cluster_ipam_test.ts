/**
 * The cluster IPAM end to end: three simulated nodes (a netns each, own state dir), a real
 * etcd, pods ADDed concurrently by `bin/podplex` on one /23. CI runs smaller bursts;
 * `PODPLEX_LONG=1` runs the full sizes (300 pods).
 *
 * @module
 */
import assert from "node:assert/strict";
import { ClusterRig, type CniOutcome, errCode, pool, type RigPod } from "./_cluster_rig.ts";
import { haveEtcd } from "./etcd_server.ts";
import { isRoot, stateFiles } from "./testutils.ts";

const LONG = Deno.env.get("PODPLEX_LONG") === "1";
const ignore = !isRoot || !haveEtcd();
const CONCURRENCY = 24;

/** The addresses of the ADD results, by pod. */
function resultAddrs(o: CniOutcome): string[] {
  const ips = (o.json?.ips ?? []) as Array<{ address: string }>;
  return ips.map((i) => i.address.split("/")[0]);
}

function byIp(recs: { containerId: string; ip: string }[], id: string): string | undefined {
  return recs.find((r) => r.containerId === id)?.ip;
}

function duplicates(list: string[]): string[] {
  const seen = new Set<string>();
  return list.filter((x) => seen.has(x) || !seen.add(x));
}

/** ADDs every pod (at most CONCURRENCY at a time); retries the ones that failed with 11. */
async function addAll(rig: ClusterRig, pods: RigPod[], retry = false) {
  const failures: number[] = [];
  let outs = await pool(pods, CONCURRENCY, (p) => rig.cni("ADD", p));
  for (const o of outs) if (o.code !== 0) failures.push(errCode(o));
  if (retry) {
    for (let round = 0; round < 6 && outs.some((o) => o.code !== 0); round++) {
      const again = pods.map((p, i) => [p, i] as const).filter(([, i]) => outs[i].code !== 0);
      const redo = await pool(again, CONCURRENCY, ([p]) => rig.cni("ADD", p));
      outs = outs.slice();
      again.forEach(([, i], k) => outs[i] = redo[k]);
    }
  }
  return { outs, failures };
}

async function assertNoDuplicates(rig: ClusterRig, pods: RigPod[], outs: CniOutcome[]) {
  for (const [i, o] of outs.entries()) {
    assert.equal(o.code, 0, `ADD ${pods[i].id}: ${JSON.stringify(o.json)} ${o.stderr}`);
  }
  const recs = await rig.records();
  assert.equal(recs.length, pods.length, "one record per pod");
  assert.deepEqual(duplicates(recs.map((r) => r.ip)), [], "no address twice in etcd");
  const kernel = (await pool(pods, 16, (p) => rig.podAddrs(p))).flat();
  assert.equal(kernel.length, pods.length, "one address in each pod's netns");
  assert.deepEqual(duplicates(kernel), [], "no address twice in the pods' kernels");
  const byPod = new Map(recs.map((r) => [r.containerId, r.ip]));
  for (const [i, p] of pods.entries()) {
    assert.equal(byPod.get(p.id), resultAddrs(outs[i])[0], `etcd and the result agree for ${p.id}`);
    assert.equal(recs.find((r) => r.containerId === p.id)?.node, rig.nodes[p.node].name);
  }
}

async function delAll(rig: ClusterRig, pods: RigPod[]) {
  const outs = await pool(pods, CONCURRENCY, (p) => rig.cni("DEL", p));
  for (const [i, o] of outs.entries()) {
    assert.equal(o.code, 0, `DEL ${pods[i].id}: ${JSON.stringify(o.json)}`);
  }
}

Deno.test({
  name:
    "cluster IPAM: a concurrent burst on three nodes gives no address twice; DEL leaves nothing",
  ignore,
  sanitizeResources: false,
  async fn() {
    await using rig = await ClusterRig.start({ nodes: 3 });
    const pods = await rig.makePods(LONG ? 300 : 60);
    // Retried only on 11 (a call that hit its etcd bound on a machine busy with other tests).
    const { outs, failures } = await addAll(rig, pods, true);
    assert.deepEqual(failures.filter((c) => c !== 11), [], "failures are only code 11");
    await assertNoDuplicates(rig, pods, outs);
    // Block affinity: each node allocated inside its own blocks (of /26) first.
    const recs = await rig.records();
    const blocksByNode = new Map<string, Set<string>>();
    for (const r of recs) {
      const last = Number(r.ip.split(".")[3]) + 256 * Number(r.ip.split(".")[2]);
      const set = blocksByNode.get(r.node) ?? new Set();
      set.add(String(Math.floor(last / 64)));
      blocksByNode.set(r.node, set);
    }
    const all = [...blocksByNode.values()].flatMap((s) => [...s]);
    assert.deepEqual(duplicates(all), [], "no block is used by two nodes while blocks are free");
    // What `podplex ipam` shows users agrees with etcd.
    // deno-lint-ignore no-explicit-any
    const ls = await rig.ipam(rig.nodes[0], "ls") as any[];
    assert.equal(ls.length, 1);
    assert.equal(ls[0].addresses, pods.length);
    assert.deepEqual(
      [...new Set(ls[0].blocks.map((b: { node: string }) => b.node))].sort(),
      rig.nodes.map((n) => n.name),
    );
    // deno-lint-ignore no-explicit-any
    const shown = await rig.ipam(rig.nodes[1], "show", "--pod", `default/${pods[1].id}`) as any[];
    assert.deepEqual(shown.map((r) => [r.ip, r.node]), [[
      byIp(recs, pods[1].id),
      rig.nodes[pods[1].node].name,
    ]]);
    await delAll(rig, pods);
    assert.deepEqual(await rig.heldKeys(), [], "no record left after DEL");
  },
});

Deno.test({
  name:
    "cluster IPAM: the etcd leader SIGKILLed mid-burst: only code 11, retries succeed, no duplicate",
  ignore,
  sanitizeResources: false,
  async fn() {
    // A short bound (elections take ~0.5 s here), so that calls caught by the election fail
    // with 11 instead of riding it out: their retries must then succeed.
    await using rig = await ClusterRig.start({ nodes: 3, members: 3, etcdTimeoutMs: 400 });
    const pods = await rig.makePods(LONG ? 300 : 60);
    const burst = addAll(rig, pods);
    // Kill the leader once a third of the pods have their address.
    const end = Date.now() + 60000;
    while ((await rig.records()).length < pods.length / 3 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const leader = await rig.etcd.leader();
    await rig.etcd.kill(leader, "SIGKILL");
    const { outs, failures } = await burst;
    assert.deepEqual(failures.filter((c) => c !== 11), [], "failures are only code 11");
    const failed = pods.filter((_, i) => outs[i].code !== 0);
    const retried = await addAll(rig, failed, true);
    const final = outs.map((o, i) => o.code === 0 ? o : retried.outs[failed.indexOf(pods[i])]);
    await assertNoDuplicates(rig, pods, final);
    await delAll(rig, pods);
    // A DEL caught by a slow moment (400 ms bound) journals its release: replay it, as the
    // node's next call or its daemon would.
    for (const n of rig.nodes) await rig.reconcile(n);
    assert.deepEqual(await rig.heldKeys(), [], "no record leaked after DEL");
    console.log(`leader ${leader} killed: ${failures.length} ADDs failed with 11, all retried OK`);
  },
});

Deno.test({
  name: "cluster IPAM: DELs while etcd is stopped are journaled and replayed: nothing leaks",
  ignore,
  sanitizeResources: false,
  async fn() {
    await using rig = await ClusterRig.start({ nodes: 3, etcdTimeoutMs: 800 });
    const pods = await rig.makePods(LONG ? 90 : 30);
    const { outs } = await addAll(rig, pods);
    await assertNoDuplicates(rig, pods, outs);
    const half = Math.floor(pods.length / 2);
    await delAll(rig, pods.slice(0, half));
    await rig.etcd.kill(0, "SIGKILL");
    // etcd is down: DEL still succeeds (the release goes to the node's journal).
    await delAll(rig, pods.slice(half));
    const journaled = rig.nodes.flatMap((n) => {
      try {
        return [...Deno.readDirSync(`${n.dir}/ipam/${n.name}/journal`)];
      } catch {
        return [];
      }
    });
    assert.equal(
      journaled.length,
      pods.length - half,
      "one journal entry per DEL made while etcd was down",
    );
    await rig.etcd.restart(0);
    assert.equal(
      (await rig.heldKeys()).filter((k) => k.includes("/ip/")).length,
      pods.length - half,
    );
    let replayed = 0;
    for (const n of rig.nodes) replayed += Number((await rig.reconcile(n)).journalReplayed);
    assert.equal(replayed, pods.length - half);
    assert.deepEqual(await rig.heldKeys(), [], "no record leaked after the replay");
  },
});

Deno.test({
  name: "cluster IPAM: ADDs SIGKILLed at 50+ points, then reconcile: no orphan record",
  ignore,
  sanitizeResources: false,
  async fn() {
    await using rig = await ClusterRig.start({ nodes: 3 });
    const target = LONG ? 150 : 50;
    let killed = 0;
    const done: RigPod[] = [];
    // Batches until enough ADDs died mid-flight (some finish before their kill point).
    for (let batch = 0; killed < target && batch < 10; batch++) {
      await pool(await rig.makePods(30), 12, async (p) => {
        const child = rig.spawn("ADD", p);
        // Kill points spread over an ADD's life (process start .. etcd txns .. state save).
        const delay = 30 + Math.floor(Math.random() * 1200);
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* exited */ }
        }, delay);
        const st = await child.output();
        clearTimeout(timer);
        if (st.signal === "SIGKILL") killed++;
        else if (st.code === 0) done.push(p);
      });
    }
    assert.ok(killed >= target, `at least ${target} ADDs were killed (${killed})`);
    const orphans = (await rig.records()).length - done.length;
    // The runtime's GC (valid = the pods that exist for it), then the reconciler for what no
    // state names (an ADD killed before podplex wrote its state).
    for (const [i, n] of rig.nodes.entries()) {
      const conf = JSON.parse(rig.confText(n));
      conf.cniVersion = "1.1.0";
      conf["cni.dev/valid-attachments"] = done.filter((p) => p.node === i)
        .map((p) => ({ containerID: p.id, ifname: "eth0" }));
      const gc = await rig.cni("GC", { id: "gc", ns: "", node: i }, JSON.stringify(conf));
      assert.equal(gc.code, 0, JSON.stringify(gc.json));
    }
    const afterGc = (await rig.records()).length - done.length;
    let released = 0;
    for (const n of rig.nodes) {
      released += ((await rig.reconcile(n)).released as unknown[]).length;
    }
    assert.equal(released, afterGc, "reconcile released what GC could not see");
    const recs = await rig.records();
    assert.deepEqual(
      recs.map((r) => r.containerId).sort(),
      done.map((p) => p.id).sort(),
      "only completed ADDs hold addresses",
    );
    for (const p of done) {
      assert.deepEqual(await rig.podAddrs(p), [recs.find((r) => r.containerId === p.id)!.ip]);
    }
    await delAll(rig, done);
    assert.deepEqual(await rig.heldKeys(), []);
    console.log(
      `${killed} ADDs killed, ${done.length} completed; orphans: ${orphans}, ` +
        `released by GC ${orphans - afterGc}, by reconcile ${released}`,
    );
  },
});

/** Every pod ADDed at once (as kubelet starts them); each ADD's time from its spawn. */
async function scenario313(ipam: "whereabouts" | "host-local", pods: number, networks: number) {
  await using rig = await ClusterRig.start({ nodes: 3, networks, ipam });
  const list = await rig.makePods(pods);
  const t0 = performance.now();
  const outs = await Promise.all(list.map((p) => rig.cni("ADD", p)));
  const makespan = performance.now() - t0;
  for (const [i, o] of outs.entries()) {
    assert.equal(o.code, 0, `${ipam} ADD ${list[i].id}: ${JSON.stringify(o.json)}`);
  }
  const slowest = Math.max(...outs.map((o) => o.ms));
  let dupes: string[] = [];
  if (ipam === "whereabouts") {
    const recs = await rig.records();
    assert.equal(recs.length, pods * networks);
    dupes = duplicates(recs.map((r) => `${r.range} ${r.ip}`));
  }
  await delAll(rig, list);
  if (ipam === "whereabouts") assert.deepEqual(await rig.heldKeys(), []);
  return { makespan, slowest, dupes };
}

Deno.test({
  name:
    "cluster IPAM: Whereabouts #313 (pods x 16 networks on three nodes) stays far under 4 minutes",
  ignore,
  sanitizeResources: false,
  async fn() {
    const pods = LONG ? 128 : 24;
    const networks = LONG ? 16 : 8;
    const cluster = await scenario313("whereabouts", pods, networks);
    assert.deepEqual(cluster.dupes, [], "no address twice in any network");
    assert.ok(
      cluster.slowest < 240_000,
      `every ADD under kubelet's 4 minutes (${cluster.slowest} ms)`,
    );
    const local = await scenario313("host-local", pods, networks);
    console.log(
      `#313 ${pods} pods x ${networks} networks, 3 nodes: makespan cluster IPAM ` +
        `${(cluster.makespan / 1000).toFixed(1)} s (slowest ADD ${
          (cluster.slowest / 1000).toFixed(1)
        } s)` +
        `, host-local ${(local.makespan / 1000).toFixed(1)} s (slowest ${
          (local.slowest / 1000).toFixed(1)
        } s)` +
        `, ratio ${(cluster.makespan / local.makespan).toFixed(2)}`,
    );
  },
});

Deno.test({
  name: "podplex serve --ipam-network keeps the node's affinity lease and stops cleanly",
  ignore,
  sanitizeResources: false,
  async fn() {
    await using rig = await ClusterRig.start({ nodes: 1 });
    const node = rig.nodes[0];
    const socket = `${rig.dir}/serve.sock`;
    // serve reads the podplex conf as a conflist (its stateDir: which attachments exist).
    const list = `${rig.dir}/podplex.conflist`;
    const entry = JSON.parse(await Deno.readTextFile(node.confPath));
    await Deno.writeTextFile(
      list,
      JSON.stringify({ cniVersion: "1.0.0", name: "podplex", plugins: [entry] }),
    );
    const child = new Deno.Command(`${new URL("..", import.meta.url).pathname}bin/podplex`, {
      args: ["serve", "--socket", socket, "--ipam-network", `${node.dir}/nets/default/net0.json`],
      env: { PODPLEX_CONFIG: list },
      stdout: "null",
      stderr: "piped",
    }).spawn();
    try {
      const leaseFile = `${node.dir}/ipam/${node.name}/lease`;
      const end = Date.now() + 15000;
      while (Date.now() < end && !(await Deno.stat(leaseFile).then(() => true, () => false))) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const lease = (await Deno.readTextFile(leaseFile)).trim();
      assert.match(lease, /^\d+$/);
      // A pod's block claim goes under that lease.
      const [pod] = await rig.makePods(1);
      assert.equal((await rig.cni("ADD", pod)).code, 0);
      // deno-lint-ignore no-explicit-any
      const ls = await rig.ipam(node, "ls") as any[];
      assert.equal(ls[0].blocks.length, 1);
      assert.equal((await rig.cni("DEL", pod)).code, 0);
    } finally {
      try {
        child.kill("SIGTERM");
      } catch { /* exited: its stderr says why */ }
      const out = await child.output();
      assert.match(new TextDecoder().decode(out.stderr), /cluster IPAM: node "node0"/);
    }
  },
});

Deno.test({
  name: "cluster IPAM: ADD while etcd is unreachable fails with 11 within the bound, nothing kept",
  ignore,
  sanitizeResources: false,
  async fn() {
    await using rig = await ClusterRig.start({ nodes: 1, etcdTimeoutMs: 800 });
    const [pod] = await rig.makePods(1);
    await rig.etcd.kill(0, "SIGKILL");
    const o = await rig.cni("ADD", pod);
    assert.equal(errCode(o), 11, JSON.stringify(o.json));
    assert.match(String(o.json?.msg), /etcd did not answer/);
    // Bounded: the etcd bound plus a process start and the rollback, far from kubelet's 4 min.
    assert.ok(o.ms < 10_000, `ADD gave up in ${o.ms} ms`);
    assert.deepEqual(await rig.podAddrs(pod), [], "no interface left in the pod");
    const left = stateFiles(`${rig.nodes[0].dir}/state`);
    assert.deepEqual(left, [], "no state kept for the failed ADD");
    await rig.etcd.restart(0);
    assert.deepEqual(await rig.heldKeys(), [], "nothing reserved");
    // And once etcd is back the same ADD succeeds (the rollback's DEL was journaled, replayed).
    assert.equal((await rig.cni("ADD", pod)).code, 0);
    assert.equal((await rig.records()).length, 1);
    assert.equal((await rig.cni("DEL", pod)).code, 0);
    assert.deepEqual(await rig.heldKeys(), []);
  },
});
