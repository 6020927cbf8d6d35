import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { formatIp, parseIp } from "../../../conf/ip.ts";
import { tempDir } from "../../../tests/testutils.ts";
import { DiskStore } from "./disk_store.ts";

Deno.test("two DiskStores of one directory in one process take the lock in turn", async () => {
  await using dir = await tempDir("ppdisk");
  const a = await DiskStore.open("ppnet", dir.path);
  const b = await DiskStore.open("ppnet", dir.path);
  try {
    const order: string[] = [];
    await a.lock();
    // b's flock is synchronous: without the per-directory mutex it would block this thread
    // on a's flock forever. With it, b waits until a unlocks.
    const bLocked = b.lock().then(() => order.push("b locked"));
    await new Promise((r) => setTimeout(r, 20));
    order.push("a unlocks");
    await a.unlock();
    await bLocked;
    await b.unlock();
    assertEquals(order, ["a unlocks", "b locked"]);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("DiskStore.close() with the lock held lets another store of the directory lock", async () => {
  await using dir = await tempDir("ppdisk");
  const a = await DiskStore.open("ppnet", dir.path);
  const b = await DiskStore.open("ppnet", dir.path);
  try {
    await a.lock();
    await a.close();
    await b.lock();
    await b.unlock();
  } finally {
    await b.close();
  }
});

Deno.test("DiskStore.reserve() rewrites last_reserved_ip exactly, also with a shorter address", async () => {
  await using dir = await tempDir("ppdisk");
  await using store = await DiskStore.open("ppnet", dir.path);
  const last = `${dir.path}/ppnet/last_reserved_ip.0`;
  assertEquals(await store.reserve("c1", "eth0", parseIp("10.0.0.100"), "0"), true);
  assertEquals(await Deno.readTextFile(last), "10.0.0.100");
  assertEquals(await store.reserve("c2", "eth0", parseIp("10.0.0.9"), "0"), true);
  assertEquals(await Deno.readTextFile(last), "10.0.0.9");
  assertEquals(formatIp((await store.lastReservedIP("0"))!), "10.0.0.9");
  assertEquals(await store.reserve("c3", "eth0", parseIp("10.0.0.9"), "0"), false);
  assertEquals(await Deno.readTextFile(`${dir.path}/ppnet/10.0.0.9`), "c2\r\neth0");
});
