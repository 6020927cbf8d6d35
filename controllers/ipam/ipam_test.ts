import assert from "node:assert/strict";
import type {
  EtcdKv,
  EtcdLeases,
  KeepAlive,
  KeyValue,
  RangeResult,
} from "../../clients/etcd/client.ts";
import { tempDir } from "../../tests/testutils.ts";
import { testContext } from "../testing.ts";
import { startIpam } from "./ipam.ts";

// No root, no etcd: an in-memory fake of the client's key-value and lease parts. The
// reconcile itself against a real etcd is in delegates/ipam/cluster/reconcile_test.ts and
// the affinity's leases in ./affinity_test.ts.

const PREFIX = "/podplex/ipam/v1";

/** The fake etcd: keys in a map, leases numbered, keep-alives that the test can lose. */
class FakeEtcd implements EtcdKv, EtcdLeases {
  kv = new Map<string, KeyValue>();
  rev = 0;
  leases = 0;
  keepAlives: Array<{ id: string; onLost?: (id: string) => void; stopped: boolean }> = [];
  spaceReads = 0;
  /** In flight at once, and the most ever (a pass must not overlap another). */
  busy = 0;
  maxBusy = 0;
  /** When set, the next space read fails with it. */
  failNext?: Error;
  /** Each space read waits for this first (to hold a pass under way). */
  gate: Promise<void> = Promise.resolve();

  get(key: string): Promise<KeyValue | undefined> {
    return Promise.resolve(this.kv.get(key));
  }
  async range(key: string, opts: { prefix?: boolean } = {}): Promise<RangeResult> {
    if (key === `${PREFIX}/s/`) {
      this.spaceReads++;
      this.maxBusy = Math.max(this.maxBusy, ++this.busy);
      try {
        await this.gate;
        const err = this.failNext;
        this.failNext = undefined;
        if (err) throw err;
      } finally {
        this.busy--;
      }
    }
    const kvs = [...this.kv.values()]
      .filter((x) => opts.prefix ? x.key.startsWith(key) : x.key === key)
      .sort((a, b) => a.key < b.key ? -1 : 1);
    return { kvs, count: kvs.length, revision: this.rev };
  }
  put(key: string, value: string, lease = "0"): Promise<number> {
    const old = this.kv.get(key);
    const rev = ++this.rev;
    this.kv.set(key, {
      key,
      value,
      lease,
      createRevision: old?.createRevision ?? rev,
      modRevision: rev,
      version: (old?.version ?? 0) + 1,
    });
    return Promise.resolve(rev);
  }
  delete(key: string): Promise<number> {
    return Promise.resolve(this.kv.delete(key) ? 1 : 0);
  }
  txn(): never {
    throw new Error("no transaction expected: the fake store holds no claim");
  }
  /** When set, the next lease grant fails with it. */
  failGrant?: Error;
  leaseGrant(ttl: number): Promise<{ id: string; ttl: number }> {
    const err = this.failGrant;
    this.failGrant = undefined;
    if (err) return Promise.reject(err);
    return Promise.resolve({ id: String(++this.leases), ttl });
  }
  keepAlive(id: string, _ttl: number, onLost?: (id: string) => void): KeepAlive {
    const k = { id, onLost, stopped: false };
    this.keepAlives.push(k);
    return { id, stop: () => void (k.stopped = true) };
  }
}

async function setup(intervalMs = 1000) {
  const ctx = testContext();
  const etcd = new FakeEtcd();
  const dir = await tempDir("ppk-ipam");
  let reads = 0;
  const ipam = await startIpam({
    ...ctx,
    etcd,
    node: "n1",
    dataDir: dir.path,
    intervalMs,
    attachments: () => (reads++, Promise.resolve(() => true)),
  });
  return { ctx, etcd, dir, ipam, reads: () => reads };
}

function metric(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${name} is rendered`);
  return Number(line.split(" ")[1]);
}

Deno.test("ipam controller: start puts the node key under a lease and writes the lease file", async () => {
  const { ctx, etcd, dir, ipam } = await setup();
  await using _ = dir;
  const node = etcd.kv.get(`${PREFIX}/node/n1`);
  assert.equal(node?.lease, "1");
  assert.deepEqual(
    JSON.parse(node!.value),
    { t: ctx.clock.now().getTime() },
    "time from ctx.clock",
  );
  assert.equal((await Deno.readTextFile(`${dir.path}/n1/lease`)).trim(), "1");
  assert.match(ctx.lines.join("\n"), /node "n1" keeps its block affinity \(lease 1\)/);
  await ipam.close();
});

Deno.test("ipam controller: a lost lease is granted again and the lease file follows", async () => {
  const { ctx, etcd, dir, ipam } = await setup();
  await using _ = dir;
  etcd.keepAlives[0].onLost!("1");
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(etcd.kv.get(`${PREFIX}/node/n1`)?.lease, "2");
  assert.equal((await Deno.readTextFile(`${dir.path}/n1/lease`)).trim(), "2");
  assert.equal(metric(ctx.metrics.render(), "podplex_cluster_ipam_lease_grants_total"), 2);
  await ipam.close();
  assert.ok(etcd.keepAlives.at(-1)!.stopped, "close stops refreshing the current lease");
});

Deno.test("ipam controller: a regrant that failed (etcd down) is tried again by the next pass", async () => {
  const { ctx, etcd, dir, ipam } = await setup(1000);
  await using _ = dir;
  etcd.failGrant = new Error("etcd is down");
  etcd.keepAlives[0].onLost!("1");
  await new Promise((r) => setTimeout(r, 50));
  assert.match(ctx.lines.join("\n"), /cannot grant the affinity lease again: etcd is down/);
  assert.equal(etcd.leases, 1, "no lease now");
  await ctx.clock.advance(1000);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(etcd.leases, 2, "the pass granted it again");
  assert.equal(etcd.kv.get(`${PREFIX}/node/n1`)?.lease, "2");
  assert.equal((await Deno.readTextFile(`${dir.path}/n1/lease`)).trim(), "2");
  await ctx.clock.advance(1000);
  assert.equal(etcd.leases, 2, "and not again once it holds");
  await ipam.close();
});

Deno.test("ipam controller: passes run on ctx.clock, re-read the attachments, survive a failure", async () => {
  const { ctx, etcd, dir, ipam, reads } = await setup(1000);
  await using _ = dir;
  const base = etcd.spaceReads; // the affinity's re-attach read at start
  await ctx.clock.advance(999);
  assert.equal(etcd.spaceReads, base, "no pass before the interval");
  await ctx.clock.advance(1);
  assert.equal(etcd.spaceReads, base + 1);
  assert.equal(reads(), 1);
  etcd.failNext = new Error("etcd is down");
  await ctx.clock.advance(1000);
  assert.match(ctx.lines.join("\n"), /cluster IPAM reconcile failed: etcd is down/);
  await ctx.clock.advance(1000);
  assert.equal(etcd.spaceReads, base + 3, "the pass after a failure runs");
  assert.equal(reads(), 3, "the attachments are read again each pass");
  const m = ctx.metrics.render();
  assert.equal(metric(m, "podplex_cluster_ipam_reconciles_total"), 3);
  assert.equal(metric(m, "podplex_cluster_ipam_reconcile_failures_total"), 1);
  await ipam.close();
});

Deno.test("ipam controller: reconcile() racing itself and the timer never runs two passes at once", async () => {
  const { ctx, etcd, dir, ipam } = await setup(1000);
  await using _ = dir;
  let open!: () => void;
  etcd.gate = new Promise((r) => open = r);
  const a = ipam.reconcile();
  const b = ipam.reconcile();
  await ctx.clock.advance(1000);
  open();
  await Promise.all([a, b]);
  assert.equal(etcd.maxBusy, 1);
  await ipam.close();
});

Deno.test("ipam controller: close() waits for the pass under way, twice is fine, then reconcile() is a no-op", async () => {
  const { ctx, etcd, dir, ipam } = await setup(1000);
  await using _ = dir;
  let open!: () => void;
  etcd.gate = new Promise((r) => open = r);
  const pass = ipam.reconcile();
  while (etcd.busy === 0) await new Promise((r) => setTimeout(r, 1)); // the pass is under way
  let closed = false;
  const closing = ipam.close().then(() => closed = true);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(closed, false, "close waits for the pass");
  open();
  await Promise.all([pass, closing]);
  await ipam.close();
  assert.equal(ctx.clock.pending, 0, "no timer left");
  const reads = etcd.spaceReads;
  await ipam.reconcile();
  await ctx.clock.advance(5000);
  assert.equal(etcd.spaceReads, reads, "nothing runs after close");
  assert.ok(etcd.keepAlives.every((k) => k.stopped));
});
