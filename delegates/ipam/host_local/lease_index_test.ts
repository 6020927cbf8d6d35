import assert from "node:assert/strict";
import fc from "fast-check";
import { formatIp, parseIp } from "../../../conf/ip.ts";
import { DiskStore, parseLeaseFile } from "./disk_store.ts";
import { LEASE_INDEX } from "./lease_index.ts";
import type { Store } from "./store.ts";

const ip = (s: string) => parseIp(s);

async function locked<T>(store: Store, fn: () => Promise<T>): Promise<T> {
  await store.lock();
  try {
    return await fn();
  } finally {
    await store.unlock();
  }
}

/** What the reference would answer (every lease file read): exact leases, then legacy ones. */
function oracle(net: string, id: string, ifname: string): { exact: string[]; legacy: string[] } {
  const out = { exact: [] as string[], legacy: [] as string[] };
  let names: string[] = [];
  try {
    names = [...Deno.readDirSync(net)].map((e) => e.name);
  } catch { /* no directory yet */ }
  for (const name of names) {
    if (!/^[0-9.]+$/.test(name)) continue;
    const l = parseLeaseFile(ip(name), Deno.readTextFileSync(`${net}/${name}`));
    if (l.containerId !== id) continue;
    if (l.ifname === ifname) out.exact.push(name);
    if (l.ifname === undefined) out.legacy.push(name);
  }
  out.exact.sort();
  out.legacy.sort();
  return out;
}

/** A change by another writer (the reference), a clock tick after podplex's last one. */
async function foreign(fn: () => void): Promise<void> {
  await new Promise((r) => setTimeout(r, 12));
  fn();
}

Deno.test("the lease index answers lookups by attachment as a scan of every file does, other writers between", async () => {
  const ops = fc.array(
    fc.record({
      op: fc.constantFrom(
        "reserve",
        "release",
        "get",
        "foreign-add",
        "foreign-legacy",
        "foreign-del",
      ),
      pod: fc.integer({ min: 0, max: 5 }),
      host: fc.integer({ min: 2, max: 40 }),
    }),
    { minLength: 5, maxLength: 25 },
  );
  await fc.assert(
    fc.asyncProperty(ops, async (steps) => {
      const dir = Deno.makeTempDirSync({ prefix: "ppidx" });
      const net = `${dir}/ppnet`;
      try {
        for (const s of steps) {
          const id = `ppc${s.pod}`;
          const name = `10.9.0.${s.host}`;
          if (s.op === "foreign-add" || s.op === "foreign-legacy") {
            const content = s.op === "foreign-add" ? `${id}\r\neth0` : id;
            await foreign(() => {
              try {
                Deno.writeTextFileSync(`${net}/${name}`, content, { createNew: true });
              } catch { /* taken, or no dir yet */ }
            });
            continue;
          }
          if (s.op === "foreign-del") {
            await foreign(() => {
              try {
                Deno.removeSync(`${net}/${name}`);
              } catch { /* not there */ }
            });
            continue;
          }
          await using store = await DiskStore.open("ppnet", dir);
          const before = oracle(net, id, "eth0");
          const got = await locked(store, async () => {
            if (s.op === "reserve") await store.reserve(id, "eth0", ip(name), "0");
            if (s.op === "release") return (await store.releaseByID(id, "eth0")).map(formatIp);
            return (await store.getByID(id, "eth0")).map(formatIp);
          });
          if (s.op === "release") {
            // The reference's rule: the attachment's leases, else the container's legacy ones.
            const want = before.exact.length ? before.exact : before.legacy;
            assert.deepEqual(got.sort(), want, `released for ${id}`);
          } else {
            const now = oracle(net, id, "eth0");
            assert.deepEqual(got.sort(), [...now.exact, ...now.legacy].sort(), `leases of ${id}`);
          }
        }
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    }),
    { numRuns: 12 },
  );
});

Deno.test("a lease the index names is read again before it counts: a file rewritten in place is not released", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "ppidx" });
  try {
    const net = `${dir}/ppnet`;
    {
      await using store = await DiskStore.open("ppnet", dir);
      await locked(store, () => store.reserve("ppa", "eth0", ip("10.9.0.2"), "0"));
      assert.deepEqual(await locked(store, () => store.getByID("ppa", "eth0")), [ip("10.9.0.2")]);
    }
    // Rewritten in place: the directory's entries, so its stamp, do not change.
    using f = Deno.openSync(`${net}/10.9.0.2`, { write: true });
    f.writeSync(new TextEncoder().encode("ppb\r\neth0"));
    await using store = await DiskStore.open("ppnet", dir);
    assert.deepEqual(await locked(store, () => store.releaseByID("ppa", "eth0")), []);
    assert.equal(Deno.readTextFileSync(`${net}/10.9.0.2`), "ppb\r\neth0");
    assert.deepEqual(await locked(store, () => store.getByID("ppb", "eth0")), [ip("10.9.0.2")]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a writer killed between its change and its index update leaves the index stale, not wrong", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "ppidx" });
  try {
    const net = `${dir}/ppnet`;
    {
      await using store = await DiskStore.open("ppnet", dir);
      await locked(store, () => store.getByID("ppa", "eth0")); // the index written
    }
    assert.match(Deno.readTextFileSync(`${net}/${LEASE_INDEX}`), /^podplex-lease-index 1 \S+\n$/);
    const killed = await DiskStore.open("ppnet", dir);
    await killed.lock();
    await killed.reserve("ppa", "eth0", ip("10.9.0.7"), "0");
    await killed.close(); // no unlock: the lock goes with the file, the index is not updated
    assert.equal(Deno.readTextFileSync(`${net}/${LEASE_INDEX}`), "stale\n");
    await using store = await DiskStore.open("ppnet", dir);
    assert.deepEqual(await locked(store, () => store.getByID("ppa", "eth0")), [ip("10.9.0.7")]);
    assert.match(Deno.readTextFileSync(`${net}/${LEASE_INDEX}`), /\n10\.9\.0\.7\tppa\teth0\n/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("lookups with a current index read only the lease files they find", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "ppidx" });
  try {
    const net = `${dir}/ppnet`;
    await using store = await DiskStore.open("ppnet", dir);
    await locked(store, async () => {
      for (let h = 2; h < 50; h++) await store.reserve(`ppc${h}`, "eth0", ip(`10.9.0.${h}`), "0");
    });
    await locked(store, () => store.getByID("ppc2", "eth0")); // scans and writes the index
    // Every other file rewritten in place to name ppc9: a scan would find them all; the
    // index, whose stamp did not move, finds the one lease ppc9 was given (and reads it).
    for (let h = 2; h < 50; h++) {
      if (h !== 9) Deno.writeTextFileSync(`${net}/10.9.0.${h}`, "ppc9\r\neth0");
    }
    assert.deepEqual(await locked(store, () => store.getByID("ppc9", "eth0")), [ip("10.9.0.9")]);
    // GC's list() reads every file, always.
    const all = await locked(store, () => store.list());
    assert.equal(all.filter((l) => l.containerId === "ppc9").length, 48);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a lease whose holder the index cannot carry (a tab, written by hand) is found by a scan", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "ppidx" });
  try {
    const net = `${dir}/ppnet`;
    await using store = await DiskStore.open("ppnet", dir);
    await locked(store, () => store.reserve("ppa", "eth0", ip("10.9.0.2"), "0"));
    Deno.writeTextFileSync(`${net}/10.9.0.3`, "pp\tb\r\neth0");
    for (let k = 0; k < 2; k++) {
      assert.deepEqual(await locked(store, () => store.getByID("pp\tb", "eth0")), [ip("10.9.0.3")]);
      assert.deepEqual(await locked(store, () => store.getByID("ppa", "eth0")), [ip("10.9.0.2")]);
    }
    assert.deepEqual(await locked(store, () => store.releaseByID("pp\tb", "eth0")), [
      ip("10.9.0.3"),
    ]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
