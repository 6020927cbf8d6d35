/**
 * Calls of different pods at once through the thick daemon (tests/_thick_rig.ts): a stuck
 * call, a FIFO and a huge file in the networks dir hold nobody else, every other pod's ADD
 * and DEL is answered within its deadline, and the stuck ADD is answered 11 at its deadline
 * and rolled back once it can stop. Then 100 pods ADDed 20 at a time and DELeted the same
 * way: no failure, no address twice, nothing left; then ADD/DEL cycles (CI: 150; 1,000 with
 * PODPLEX_LONG=1) after which the daemon's RSS is printed and bounded, and its JS heap's
 * reservation (the part that grew without bound before the semi-space cap) is checked.
 */
import assert from "node:assert/strict";
import { ipJson, isRoot, leaseFiles, stateFiles, tempNetns, type TestNetns } from "./testutils.ts";
import { type Outcome, type ThickNode, thickNode } from "./_thick_rig.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const LONG = Deno.env.get("PODPLEX_LONG") === "1";

function codeOf(o: Outcome): number {
  return o.code === 0 ? 0 : JSON.parse(o.stdout).code;
}

async function netnsMany(n: number): Promise<TestNetns[]> {
  const out: TestNetns[] = [];
  try {
    for (let i = 0; i < n; i++) out.push(await tempNetns("t"));
  } catch (e) {
    for (const ns of out) await ns[Symbol.asyncDispose]();
    throw e;
  }
  return out;
}

async function dispose(nss: TestNetns[]): Promise<void> {
  for (const ns of nss) await ns[Symbol.asyncDispose]();
}

async function podIps(ns: string): Promise<string[]> {
  const links = await ipJson(ns, "addr", "show");
  return links.flatMap((l) =>
    ((l.addr_info ?? []) as Array<{ family: string; local: string }>)
      .filter((a) => a.family === "inet" && l.ifname !== "lo").map((a) => a.local)
  );
}

/** Writes a network `slow`: bridge on its own subnet, then a plugin that sleeps on ADD. */
async function slowNetwork(node: ThickNode, seconds: number): Promise<void> {
  await Deno.copyFile(`${ROOT}/tests/mark_plugin.sh`, `${node.binDir}/ppt-mark`);
  await Deno.chmod(`${node.binDir}/ppt-mark`, 0o755);
  const a = JSON.parse(await Deno.readTextFile(`${node.networksDir}/default/net-a.json`));
  await Deno.writeTextFile(
    `${node.networksDir}/default/slow.json`,
    JSON.stringify({
      cniVersion: "1.0.0",
      name: "slow",
      plugins: [
        {
          ...a,
          name: undefined,
          cniVersion: undefined,
          ipam: { ...a.ipam, subnet: "10.211.60.0/24" },
        },
        { type: "ppt-mark", markFile: `${node.dir}/slow.log`, sleepAdd: seconds },
      ],
    }),
  );
}

const networks = (n: string) => ({ "k8s.v1.cni.cncf.io/networks": n });

Deno.test({
  name: "thick: a stuck call, a FIFO and a huge definition hold no other pod's ADD or DEL",
  ignore: !isRoot,
  async fn() {
    await using node = await thickNode({ networks: 1, offset: 50 });
    await slowNetwork(node, 5);
    const dir = `${node.networksDir}/default`;
    await new Deno.Command("mkfifo", { args: [`${dir}/ppt-fifo.json`] }).output();
    await new Deno.Command("truncate", { args: ["-s", "2G", `${dir}/ppt-huge.json`] }).output();
    await using d = await node.startDaemon(["--call-deadline-ms", "2500"]);
    const nss = await netnsMany(13);
    try {
      const [stuckNs, fifoNs, hugeNs, ...others] = nss;
      const stuck = node.pod("ADD", {
        netns: stuckNs.path,
        id: "ppt-stuck",
        annotations: networks("slow"),
      });
      const t0 = performance.now();
      const [fifo, huge, ...adds] = await Promise.all([
        node.pod("ADD", { netns: fifoNs.path, id: "ppt-fifo", annotations: networks("ppt-fifo") }),
        node.pod("ADD", { netns: hugeNs.path, id: "ppt-huge", annotations: networks("ppt-huge") }),
        ...others.map((ns, i) => node.pod("ADD", { netns: ns.path, id: `ppt-other-${i}` })),
      ]);
      const dels = await Promise.all(
        others.map((ns, i) => node.pod("DEL", { netns: ns.path, id: `ppt-other-${i}` })),
      );
      const othersMs = performance.now() - t0;
      adds.forEach((a, i) => assert.equal(a.code, 0, `ADD ${i}: ${a.stdout}`));
      dels.forEach((r, i) => assert.equal(r.code, 0, `DEL ${i}: ${r.stdout}`));
      assert(othersMs < 2500, `the other pods took ${othersMs} ms, past their deadline`);
      assert.equal(codeOf(fifo), 7, fifo.stdout);
      assert.match(JSON.parse(fifo.stdout).msg, /ppt-fifo\.json/);
      assert.equal(codeOf(huge), 7, huge.stdout);
      assert.match(JSON.parse(huge.stdout).msg, /ppt-huge\.json/);
      const s = await stuck;
      assert.equal(codeOf(s), 11, s.stdout);
      assert.match(JSON.parse(s.stdout).msg, /did not finish within 2500 ms/);
      // Once the sleeping plugin returns, the cancelled ADD stops and rolls back.
      for (
        let i = 0;
        !/ADD ppt-stuck eth0: ended after its client was answered: status 1/.test(d.log());
        i++
      ) {
        if (i > 200) throw new Error(`The stuck ADD never ended: ${d.log()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(await podIps(stuckNs.name), []);
      assert.deepEqual(leaseFiles(node.dataDir), []);
      assert.deepEqual(stateFiles(node.stateDir), []);
      assert.equal(d.served("ADD"), 13, d.log());
      assert.match(d.log(), /ADD was cancelled: the deadline of 2500 ms passed/);
    } finally {
      await dispose(nss);
    }
  },
});

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** The daemon's JS heap reservation (MiB), from its metrics. */
async function heapTotalMiB(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(/^podplex_heap_total_bytes (\S+)$/m.exec(text)![1]) / 1048576;
}

/** The daemon's resident set and its anonymous part (MiB), from /proc. */
function rss(pid: number): { total: number; anon: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB$`, "m").exec(status)![1]);
  return { total: kb("VmRSS") / 1024, anon: kb("RssAnon") / 1024 };
}

Deno.test({
  name:
    "thick: 100 pods ADDed 20 at a time and DELeted: no failure, no duplicate, nothing left; then churn",
  ignore: !isRoot,
  async fn() {
    await using node = await thickNode({ networks: 3, offset: 70 });
    const port = freePort();
    await using d = await node.startDaemon(["--metrics-address", `127.0.0.1:${port}`]);
    const nss = await netnsMany(100);
    try {
      const ips: string[] = [];
      for (let b = 0; b < 100; b += 20) {
        const batch = nss.slice(b, b + 20);
        const adds = await Promise.all(
          batch.map((ns, i) => node.pod("ADD", { netns: ns.path, id: `ppt-burst-${b + i}` })),
        );
        for (const [i, a] of adds.entries()) {
          assert.equal(a.code, 0, `ADD ${b + i}: ${a.stdout}`);
          const kernel = (await podIps(batch[i].name)).sort();
          const result = (JSON.parse(a.stdout).ips as { address: string }[])
            .map((x) => x.address.split("/")[0]).sort();
          assert.deepEqual(result, kernel, `pod ${b + i}: the result names its addresses`);
          ips.push(...kernel);
        }
      }
      assert.equal(ips.length, 300);
      assert.equal(new Set(ips).size, 300, "no address twice");
      assert.equal(leaseFiles(node.dataDir).length, 300);
      for (let b = 0; b < 100; b += 20) {
        const dels = await Promise.all(
          nss.slice(b, b + 20).map((ns, i) =>
            node.pod("DEL", { netns: ns.path, id: `ppt-burst-${b + i}` })
          ),
        );
        dels.forEach((r, i) => assert.equal(r.code, 0, `DEL ${b + i}: ${r.stdout}`));
      }
      assert.deepEqual(leaseFiles(node.dataDir), []);
      assert.deepEqual(stateFiles(node.stateDir), []);
      for (const ns of nss) assert.deepEqual(await podIps(ns.name), [], ns.name);
      assert.equal(d.served("ADD") + d.served("DEL"), 200, "all through the daemon");

      const cycles = LONG ? 1000 : 150;
      const before = rss(d.pid);
      // V8's reservation is what grew (semi-spaces kept at their burst size): it stays small.
      assert((await heapTotalMiB(port)) < 24, "the JS heap's reservation after the bursts");
      const ns = nss[0];
      for (let c = 0; c < cycles; c++) {
        const a = await node.pod("ADD", { netns: ns.path, id: `ppt-churn-${c}` });
        assert.equal(a.code, 0, `churn ADD ${c}: ${a.stdout}`);
        const r = await node.pod("DEL", { netns: ns.path, id: `ppt-churn-${c}` });
        assert.equal(r.code, 0, `churn DEL ${c}: ${r.stdout}`);
      }
      const after = rss(d.pid);
      const mib = (r: { total: number; anon: number }) =>
        `${r.total.toFixed(1)} MiB (${r.anon.toFixed(1)} anonymous, the rest the runtime's ` +
        `file pages)`;
      console.log(
        `thick daemon RSS: ${mib(before)} after the bursts, ${mib(after)} after ${cycles} ` +
          `ADD/DEL cycles of 3 attachments`,
      );
      assert.deepEqual(leaseFiles(node.dataDir), []);
      // Bounded: what a burst of 20 needed is enough for any number of calls after it.
      assert(after.anon < 64, `the daemon's anonymous memory grew to ${after.anon} MiB`);
      assert(after.anon < before.anon + 16, `it grew by ${after.anon - before.anon} MiB`);
      assert((await heapTotalMiB(port)) < 24, "the JS heap's reservation after the cycles");
    } finally {
      await dispose(nss);
    }
  },
});
