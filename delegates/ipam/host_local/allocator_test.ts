import assert from "node:assert/strict";
import { CniError } from "../../../conf/errors.ts";
import { formatIp, parseIp } from "../../../conf/ip.ts";
import { tempDir } from "../../../tests/testutils.ts";
import { IpAllocator, iterateRangeSet } from "./allocator.ts";
import { DiskStore } from "./disk_store.ts";
import { parseRangeSet } from "./range.ts";
import { MemoryStore, type Store } from "./store.ts";

/** Runs `fn` once with an in-memory store and once with a disk store in a temp dir. */
function withEachStore(name: string, fn: (store: Store) => Promise<void>): void {
  Deno.test(`${name} (memory store)`, async () => {
    const store = new MemoryStore();
    await fn(store);
  });
  Deno.test(`${name} (disk store)`, async () => {
    await using dir = await tempDir("ppalloc");
    const store = await DiskStore.open("ppnet", dir.path);
    try {
      await fn(store);
    } finally {
      await store.close();
    }
  });
}

const set = (...ranges: Record<string, string>[]) => parseRangeSet(ranges, "s");

async function getMany(a: IpAllocator, n: number, prefix = "c"): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await a.get(`${prefix}${i}`, "eth0")).address);
  return out;
}

Deno.test("iterateRangeSet() starts at rangeStart, skips the gateway and stops at the start", () => {
  const s = set({ subnet: "10.0.0.0/29" });
  assert.deepEqual([...iterateRangeSet(s)].map((c) => formatIp(c.ip)), [
    "10.0.0.2",
    "10.0.0.3",
    "10.0.0.4",
    "10.0.0.5",
    "10.0.0.6",
  ]);
});

Deno.test("iterateRangeSet() continues after the last reserved address and wraps around", () => {
  const s = set({ subnet: "10.0.0.0/29" });
  const got = [...iterateRangeSet(s, parseIp("10.0.0.4"))].map((c) => formatIp(c.ip));
  assert.deepEqual(got, ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"]);
});

Deno.test("iterateRangeSet() walks the ranges of a set round robin", () => {
  const s = set(
    { subnet: "10.0.0.0/30" },
    { subnet: "10.0.1.0/30", gateway: "10.0.1.3" },
  );
  const got = [...iterateRangeSet(s, parseIp("10.0.1.1"))].map((c) => formatIp(c.ip));
  assert.deepEqual(got, ["10.0.1.2", "10.0.0.2", "10.0.1.1"]);
});

withEachStore(
  "IpAllocator.get() hands out addresses in order with the subnet prefix and gateway",
  async (store) => {
    const a = new IpAllocator(set({ subnet: "10.0.0.0/29" }), store, 0);
    const first = await a.get("c0", "eth0");
    assert.deepEqual(first, { address: "10.0.0.2/29", gateway: "10.0.0.1" });
    assert.deepEqual(await getMany(a, 4, "d"), [
      "10.0.0.3/29",
      "10.0.0.4/29",
      "10.0.0.5/29",
      "10.0.0.6/29",
    ]);
  },
);

withEachStore("IpAllocator.get() fails with code 103 when the set is exhausted", async (store) => {
  const a = new IpAllocator(set({ subnet: "10.0.0.0/29" }), store, 0);
  await getMany(a, 5);
  await assert.rejects(a.get("full", "eth0"), (e: unknown) => {
    return e instanceof CniError && e.code === 103 &&
      e.message.includes("No IP addresses available in range set 10.0.0.1-10.0.0.6");
  });
});

withEachStore(
  "IpAllocator.get() continues after last_reserved_ip rather than reusing a freed address",
  async (store) => {
    const a = new IpAllocator(set({ subnet: "10.0.0.0/29" }), store, 0);
    await getMany(a, 3); // .2 .3 .4
    await a.release("c0", "eth0"); // frees .2
    assert.equal((await a.get("n", "eth0")).address, "10.0.0.5/29");
    assert.equal(formatIp((await store.lastReservedIP("0"))!), "10.0.0.5");
    assert.equal((await a.get("m", "eth0")).address, "10.0.0.6/29");
    assert.equal((await a.get("o", "eth0")).address, "10.0.0.2/29"); // wrapped
  },
);

withEachStore("IpAllocator.get() ignores a last_reserved_ip outside the set", async (store) => {
  await store.reserve("other", "eth0", parseIp("10.9.9.9"), "0");
  const a = new IpAllocator(set({ subnet: "10.0.0.0/29" }), store, 0);
  assert.equal((await a.get("c", "eth0")).address, "10.0.0.2/29");
});

withEachStore("IpAllocator.get() round robins over a set's ranges", async (store) => {
  const a = new IpAllocator(
    set({ subnet: "10.0.0.0/30" }, { subnet: "10.0.1.0/30" }),
    store,
    0,
  );
  assert.deepEqual(await getMany(a, 2), ["10.0.0.2/30", "10.0.1.2/30"]);
  await assert.rejects(a.get("x", "eth0"), (e: unknown) => e instanceof CniError && e.code === 103);
});

withEachStore("IpAllocator.get() never hands out a gateway inside the range", async (store) => {
  const a = new IpAllocator(set({ subnet: "10.0.0.0/29", gateway: "10.0.0.4" }), store, 0);
  const got = await getMany(a, 5);
  assert.ok(!got.includes("10.0.0.4/29"));
  assert.deepEqual(got.sort(), [
    "10.0.0.1/29",
    "10.0.0.2/29",
    "10.0.0.3/29",
    "10.0.0.5/29",
    "10.0.0.6/29",
  ]);
});

withEachStore(
  "IpAllocator.get() reserves a requested address and refuses it twice",
  async (store) => {
    const a = new IpAllocator(set({ subnet: "10.0.0.0/24" }), store, 0);
    const got = await a.get("c", "eth0", parseIp("10.0.0.77"));
    assert.deepEqual(got, { address: "10.0.0.77/24", gateway: "10.0.0.1" });
    await assert.rejects(
      a.get("d", "eth0", parseIp("10.0.0.77")),
      (e: unknown) => e instanceof CniError && e.code === 105 && e.message.includes("10.0.0.77"),
    );
  },
);

withEachStore(
  "IpAllocator.get() rejects a requested gateway or an address outside the set",
  async (store) => {
    const a = new IpAllocator(set({ subnet: "10.0.0.0/24", rangeEnd: "10.0.0.50" }), store, 0);
    await assert.rejects(a.get("c", "eth0", parseIp("10.0.0.1")), /is the gateway/);
    await assert.rejects(a.get("c", "eth0", parseIp("10.0.0.51")), /not in range set/);
    assert.deepEqual(await store.list(), []);
  },
);

withEachStore(
  "IpAllocator.get() refuses a second address of one set for one attachment",
  async (store) => {
    const a = new IpAllocator(set({ subnet: "10.0.0.0/24" }), store, 0);
    await a.get("c", "eth0");
    await assert.rejects(a.get("c", "eth0"), /duplicate allocation/);
    // Another ifname of the same container is another attachment.
    assert.equal((await a.get("c", "eth1")).address, "10.0.0.3/24");
  },
);

withEachStore("IpAllocator.release() frees exactly the attachment's addresses", async (store) => {
  const a = new IpAllocator(set({ subnet: "10.0.0.0/24" }), store, 0);
  await a.get("c", "eth0");
  await a.get("c", "eth1");
  const freed = await a.release("c", "eth0");
  assert.deepEqual(freed.map(formatIp), ["10.0.0.2"]);
  assert.deepEqual((await store.list()).map((l) => formatIp(l.ip)), ["10.0.0.3"]);
  assert.deepEqual(await a.release("nobody", "eth0"), []);
});

withEachStore(
  "Store.releaseByID() releases legacy id-only leases only when no exact lease exists",
  async (store) => {
    // A legacy lease (no ifname) as older host-local versions wrote them.
    if (store instanceof MemoryStore) {
      store.leases.set("10.0.0.9", { ip: parseIp("10.0.0.9"), containerId: "c" });
    } else if (store instanceof DiskStore) {
      await Deno.writeTextFile(`${store.dir}/10.0.0.9`, "c");
    }
    await store.reserve("c", "eth0", parseIp("10.0.0.2"), "0");
    assert.deepEqual((await store.getByID("c", "eth0")).map(formatIp).sort(), [
      "10.0.0.2",
      "10.0.0.9",
    ]);
    assert.deepEqual((await store.releaseByID("c", "eth0")).map(formatIp), ["10.0.0.2"]);
    assert.deepEqual((await store.releaseByID("c", "eth0")).map(formatIp), ["10.0.0.9"]);
    assert.deepEqual(await store.list(), []);
  },
);
