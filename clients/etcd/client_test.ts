import assert from "node:assert/strict";
import { CniError } from "../../conf/errors.ts";
import { haveEtcd, makeCerts, startEtcd, tlsFiles } from "../../tests/etcd_server.ts";
import { tempDir } from "../../tests/testutils.ts";
import { cniError, EtcdClient, EtcdError, EtcdUnavailableError } from "./client.ts";
import { Watcher, type WatchEvent } from "./watch.ts";

const ignore = !haveEtcd();

async function caught(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error("The call did not fail");
}

Deno.test({
  name: "etcd client: put, get, range by prefix, delete, txn create-if-absent",
  ignore,
  async fn() {
    await using etcd = await startEtcd();
    const c = new EtcdClient({ endpoints: etcd.endpoints });
    try {
      assert.deepEqual(await c.get("/t/a"), undefined);
      await c.put("/t/a", "één");
      await c.put("/t/b", "2");
      await c.put("/u", "3");
      const a = await c.get("/t/a");
      assert.deepEqual(a?.value, "één");
      assert.deepEqual(a?.version, 1);
      const r = await c.range("/t/", { prefix: true });
      assert.deepEqual(r.kvs.map((k) => k.key), ["/t/a", "/t/b"]);
      assert.deepEqual(r.count, 2);

      const absent = { key: "/t/c", target: "CREATE" as const, result: "EQUAL" as const };
      const first = await c.txn({
        compare: [{ ...absent, createRevision: 0 }],
        success: [{ put: { key: "/t/c", value: "mine" } }],
        failure: [{ range: { key: "/t/c" } }],
      });
      assert(first.succeeded);
      const second = await c.txn({
        compare: [{ ...absent, createRevision: 0 }],
        success: [{ put: { key: "/t/c", value: "theirs" } }],
        failure: [{ range: { key: "/t/c" } }],
      });
      assert.deepEqual(second.succeeded, false);
      assert.deepEqual(second.responses, [{ range: { kvs: [await c.get("/t/c")] } }]);
      assert.deepEqual((await c.get("/t/c"))?.value, "mine");

      assert.deepEqual(await c.delete("/t/", { prefix: true }), 3);
      assert.deepEqual((await c.range("/", { prefix: true })).kvs.map((k) => k.key), ["/u"]);
    } finally {
      c.close();
    }
  },
});

Deno.test({
  name: "etcd client: a lease's keys go when it is revoked; keepAlive reports a lost lease",
  ignore,
  async fn() {
    await using etcd = await startEtcd();
    const c = new EtcdClient({ endpoints: etcd.endpoints });
    try {
      const l = await c.leaseGrant(5);
      assert(l.ttl >= 4);
      await c.put("/l/x", "1", l.id);
      assert.deepEqual((await c.get("/l/x"))?.lease, l.id);
      assert(await c.leaseKeepAliveOnce(l.id) > 0);
      assert(await c.leaseTimeToLive(l.id) > 0);
      let lost = "";
      const ka = c.keepAlive(l.id, 1, (id) => lost = id);
      await c.leaseRevoke(l.id);
      await c.leaseRevoke(l.id); // gone already: not an error
      assert.deepEqual(await c.get("/l/x"), undefined);
      const end = Date.now() + 3000;
      while (!lost && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      ka.stop();
      assert.deepEqual(lost, l.id);
      assert.deepEqual(await c.leaseKeepAliveOnce(l.id), 0);
    } finally {
      c.close();
    }
  },
});

Deno.test({
  name: "etcd client: an unreachable etcd is EtcdUnavailableError within the bound, code 11",
  async fn() {
    // A port in our range with nothing listening (bound then closed).
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    const c = new EtcdClient({ endpoints: [`127.0.0.1:${port}`], totalTimeoutMs: 400 });
    const t0 = Date.now();
    const err = await caught(() => c.get("/x"));
    assert.ok(err instanceof EtcdUnavailableError);
    c.close();
    assert(Date.now() - t0 < 2000, "the call is bounded");
    const cni = cniError(err, "Cannot read /x");
    assert(cni instanceof CniError);
    assert.deepEqual(cni.code, 11);
    assert(cni.message.startsWith("Cannot read /x: etcd did not answer"));
  },
});

Deno.test({
  name: "etcd client: a refused request is EtcdError (not unavailable), code 5",
  ignore,
  async fn() {
    await using etcd = await startEtcd();
    const c = new EtcdClient({ endpoints: etcd.endpoints });
    try {
      // Lease 1 does not exist: etcd refuses the put.
      const err = await caught(() => c.put("/x", "1", "1"));
      assert.ok(err instanceof EtcdError);
      assert(!(err instanceof EtcdUnavailableError));
      assert.deepEqual(cniError(err, "Cannot put").code, 5);
    } finally {
      c.close();
    }
  },
});

Deno.test({
  name: "etcd client: fails over to the next member when one is killed; watch resumes",
  ignore,
  async fn() {
    await using etcd = await startEtcd({ members: 3 });
    const c = new EtcdClient({ endpoints: etcd.endpoints, totalTimeoutMs: 8000 });
    const seen: WatchEvent[] = [];
    let snapshot: string[] = [];
    await c.put("/w/0", "before");
    const w = new Watcher(c, { key: "/w/", prefix: true }, {
      onResync: (kvs) => {
        snapshot = kvs.map((k) => k.key);
      },
      onEvents: (ev) => {
        seen.push(...ev);
      },
    });
    try {
      await w.ready;
      assert.deepEqual(snapshot, ["/w/0"]);
      for (let i = 1; i <= 5; i++) await c.put(`/w/${i}`, "a");
      // The client prefers the member that answered last: kill that one (the first).
      await etcd.kill(0);
      for (let i = 6; i <= 10; i++) await c.put(`/w/${i}`, "b");
      await c.delete("/w/3");
      const end = Date.now() + 8000;
      while (seen.length < 11 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(seen.map((e) => `${e.type} ${e.kv.key}`), [
        ...Array.from({ length: 10 }, (_, i) => `PUT /w/${i + 1}`),
        "DELETE /w/3",
      ]);
      const revs = seen.map((e) => e.kv.modRevision);
      assert.deepEqual(revs, [...revs].sort((a, b) => a - b), "in revision order");
      assert.deepEqual((await c.range("/w/", { prefix: true })).count, 10);
    } finally {
      await w.close();
      c.close();
    }
  },
});

Deno.test({
  name: "etcd client: TLS with a client certificate; no certificate is refused",
  ignore,
  async fn() {
    await using dir = await tempDir("ppe-tls");
    const certs = await makeCerts(dir.path);
    await using etcd = await startEtcd({ tls: certs.server });
    const c = new EtcdClient({ endpoints: etcd.endpoints, tls: await tlsFiles(certs.client) });
    try {
      await c.put("/tls", "ok");
      assert.deepEqual((await c.get("/tls"))?.value, "ok");
    } finally {
      c.close();
    }
    const ca = await Deno.readTextFile(certs.client.ca);
    const anon = new EtcdClient({ endpoints: etcd.endpoints, tls: { ca }, totalTimeoutMs: 800 });
    assert.ok(await caught(() => anon.get("/tls")) instanceof EtcdUnavailableError);
    anon.close();
  },
});

Deno.test({
  name: "etcd watch: a start revision that was compacted resyncs with the full state",
  ignore,
  async fn() {
    await using etcd = await startEtcd();
    const c = new EtcdClient({ endpoints: etcd.endpoints });
    for (let i = 0; i < 4; i++) await c.put(`/r/${i}`, String(i));
    await c.delete("/r/0");
    const rev = (await c.range("/r/", { prefix: true })).revision;
    await c.call("/v3/kv/compaction", { revision: String(rev) });
    const resyncs: string[][] = [];
    const events: string[] = [];
    const w = new Watcher(c, { key: "/r/", prefix: true, startRevision: 2 }, {
      onResync: (kvs) => {
        resyncs.push(kvs.map((k) => `${k.key}=${k.value}`));
      },
      onEvents: (ev) => {
        events.push(...ev.map((e) => `${e.type} ${e.kv.key}`));
      },
    });
    try {
      await w.ready;
      // etcd confirms the watch, then cancels it as compacted: wait for the resync.
      let end = Date.now() + 3000;
      while (resyncs.length < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      await c.put("/r/9", "9");
      end = Date.now() + 3000;
      while (events.length < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(resyncs, [["/r/1=1", "/r/2=2", "/r/3=3"]]);
      assert.deepEqual(events, ["PUT /r/9"]);
    } finally {
      await w.close();
      c.close();
    }
  },
});
