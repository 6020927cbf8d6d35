import assert from "node:assert/strict";
import { createFileCache } from "./files.ts";

// The cache's clock runs 5 s ahead: every write here is old enough to be cached.
const later = () => Date.now() + 5000;

function write(path: string, text: string) {
  Deno.writeTextFileSync(path, text);
}

// With the clock ahead the racy rule is off: writes here are a few ms apart instead.
const tick = () => new Promise((r) => setTimeout(r, 5));

Deno.test("the file cache re-reads a file only when it changed, and a listing when an entry came", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "pptfiles" });
  try {
    const f = `${dir}/a.json`;
    write(f, "one");
    const c = createFileCache(100, later);
    assert.equal(c.read(f, "x"), "one");
    assert.equal(c.read(f, "x"), "one");
    assert.deepEqual(c.stats, { hits: 1, misses: 1 });
    await tick();
    write(f, "two"); // same size, same inode: the mtime tells
    assert.equal(c.read(f, "x"), "two");
    await tick();
    Deno.writeTextFileSync(`${dir}/b.tmp`, "three");
    Deno.renameSync(`${dir}/b.tmp`, f); // atomic replace: another inode
    assert.equal(c.read(f, "x"), "three");
    Deno.removeSync(f);
    assert.equal(c.read(f, "x"), null);
    assert.deepEqual([...c.list(dir)], []);
    await tick();
    write(`${dir}/n.yaml`, "x");
    assert.deepEqual([...c.list(dir)], ["n.yaml"], "a new entry is listed");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a file changed within the last second is read but not cached; a FIFO is refused each time", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "pptfiles" });
  try {
    const c = createFileCache();
    Deno.writeTextFileSync(`${dir}/fresh`, "x");
    c.read(`${dir}/fresh`, "x");
    c.read(`${dir}/fresh`, "x");
    assert.deepEqual(c.stats, { hits: 0, misses: 2 });
    assert.equal(c.size, 0);
    await new Deno.Command("mkfifo", { args: [`${dir}/fifo`] }).output();
    for (let i = 0; i < 2; i++) {
      assert.throws(() => c.read(`${dir}/fifo`, "network definition"), /it is a FIFO/);
    }
    assert.equal(c.size, 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
