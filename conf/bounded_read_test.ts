import assert from "node:assert/strict";
import { CniError } from "./errors.ts";
import { readBoundedSync, readBoundedTextSync } from "./bounded_read.ts";

function codeOf(fn: () => unknown): { code: number; msg: string } {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof CniError)) throw e;
    return { code: e.code, msg: e.message };
  }
  throw new Error("expected an error");
}

/**
 * Runs `readBoundedSync(path)` in a child process that is killed after 20 s: a reader that
 * blocks on a FIFO or reads /dev/zero without end must fail this test, not hang the suite.
 */
async function readInChild(path: string): Promise<{ code: number; msg: string; ms: number }> {
  const mod = new URL("./bounded_read.ts", import.meta.url).href;
  const script = `import { readBoundedSync } from ${JSON.stringify(mod)};
    try { readBoundedSync(${JSON.stringify(path)}, { what: "network definition" });
      console.log(JSON.stringify({ code: 0, msg: "read" }));
    } catch (e) { console.log(JSON.stringify({ code: e.code, msg: e.message })); }`;
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", script],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).output();
  const ms = performance.now() - t0;
  const text = new TextDecoder().decode(out.stdout).trim();
  assert.ok(
    out.success && text,
    `the reader hung or crashed (${ms | 0} ms): ${new TextDecoder().decode(out.stderr)}`,
  );
  return { ...JSON.parse(text), ms };
}

Deno.test("readBoundedSync() refuses a FIFO and a link to /dev/zero at once with code 7 naming the file", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "ppr-br-" });
  try {
    const fifo = `${dir}/net.json`;
    const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.ok(mk.success);
    Deno.symlinkSync("/dev/zero", `${dir}/zero.json`);
    for (const [path, kind] of [[fifo, "a FIFO"], [`${dir}/zero.json`, "a character device"]]) {
      const r = await readInChild(path);
      assert.equal(r.code, 7, `${path}: ${r.msg}`);
      assert.ok(r.msg.includes(`"${path}"`), r.msg);
      assert.ok(r.msg.includes(kind), r.msg);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("readBoundedSync() reads regular files and links to them, refuses dirs and large files", () => {
  const dir = Deno.makeTempDirSync({ prefix: "ppr-br-" });
  try {
    Deno.writeTextFileSync(`${dir}/a.json`, "{}");
    Deno.symlinkSync(`${dir}/a.json`, `${dir}/link.json`);
    assert.equal(readBoundedTextSync(`${dir}/a.json`, { what: "x" }), "{}");
    assert.equal(readBoundedTextSync(`${dir}/link.json`, { what: "x" }), "{}");
    assert.equal(readBoundedSync(`${dir}/none.json`, { what: "x" }), null);
    Deno.symlinkSync(`${dir}/none.json`, `${dir}/dangling.json`);
    assert.equal(readBoundedSync(`${dir}/dangling.json`, { what: "x" }), null);
    Deno.mkdirSync(`${dir}/d.json`);
    const d = codeOf(() => readBoundedSync(`${dir}/d.json`, { what: "network definition" }));
    assert.equal(d.code, 7);
    assert.match(d.msg, /network definition ".*d\.json": it is a directory/);
    Deno.writeFileSync(`${dir}/big.json`, new Uint8Array(2048));
    const big = codeOf(() => readBoundedSync(`${dir}/big.json`, { what: "x", maxBytes: 1024 }));
    assert.equal(big.code, 7);
    assert.match(big.msg, /2048 bytes or more; at most 1024/);
    assert.equal(readBoundedSync(`${dir}/big.json`, { what: "x", maxBytes: 2048 })?.length, 2048);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
