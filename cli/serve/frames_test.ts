import assert from "node:assert/strict";
import { FrameBudget, FrameRefused, readFrame } from "./frames.ts";
import { PROTOCOL } from "./protocol.ts";

/** A connected pair of unix sockets in a temp dir: the daemon's end and the client's. */
async function pair(): Promise<{ server: Deno.Conn; client: Deno.Conn } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "ppframes" });
  const listener = Deno.listen({ transport: "unix", path: `${dir}/s.sock` });
  const [server, client] = await Promise.all([
    listener.accept(),
    Deno.connect({ transport: "unix", path: `${dir}/s.sock` }),
  ]);
  listener.close();
  return {
    server,
    client,
    async [Symbol.asyncDispose]() {
      for (const c of [server, client]) {
        try {
          c.close();
        } catch { /* closed by the test */ }
      }
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function header(len: number): Uint8Array {
  const h = new Uint8Array(4);
  new DataView(h.buffer).setUint32(0, len);
  return h;
}

async function send(c: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await c.write(bytes.subarray(off));
}

async function refusal(p: Promise<unknown>): Promise<FrameRefused> {
  try {
    await p;
  } catch (e) {
    if (e instanceof FrameRefused) return e;
    throw e;
  }
  throw new Error("the frame was read");
}

Deno.test("readFrame() reads a body of many chunks whole and gives its bytes back", async () => {
  await using p = await pair();
  const body = crypto.getRandomValues(new Uint8Array(60_000));
  const big = new Uint8Array(300_000).map((_, i) => body[i % body.length]);
  const budget = new FrameBudget(1 << 20);
  const writing = send(p.client, new Uint8Array([...header(big.length), ...big]));
  const got = await readFrame(p.server, budget, 5000);
  await writing;
  assert.deepEqual(got, big);
  assert.equal(budget.used, 0);
});

Deno.test("readFrame() refuses a frame over the protocol's maximum before its body", async () => {
  await using p = await pair();
  await send(p.client, header(PROTOCOL.maxFrame + 1)); // no body will ever come
  const e = await refusal(readFrame(p.server, new FrameBudget(1 << 20), 60_000));
  assert.equal(e.reason, "malformed");
  assert.match(e.message, /exceeds/);
});

Deno.test("readFrame() refuses a frame that would take the held bytes past the budget", async () => {
  await using a = await pair();
  await using b = await pair();
  const budget = new FrameBudget(1_000_000);
  // A holds 150 kB of a 600 kB frame and waits: its chunk (the whole 600 kB) is counted.
  await send(a.client, new Uint8Array([...header(600_000), ...new Uint8Array(150_000)]));
  const holding = readFrame(a.server, budget, 60_000).catch((e) => e);
  for (let i = 0; budget.used < 600_000; i++) {
    assert.ok(i < 200, `A's bytes are counted: ${budget.used}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  // Another large frame does not fit in what large frames may take (3/4 of the cap)...
  const sendingB = send(b.client, new Uint8Array([...header(300_000), ...new Uint8Array(300_000)]));
  const e = await refusal(readFrame(b.server, budget, 60_000));
  b.server.close(); // refused: the daemon closes, the sender's write ends
  await sendingB.catch(() => {});
  assert.equal(e.reason, "busy");
  // ...but a small one (every real call) still has the reserve.
  await using c = await pair();
  const sendingC = send(c.client, new Uint8Array([...header(200_000), ...new Uint8Array(200_000)]));
  assert.equal((await readFrame(c.server, budget, 60_000)).length, 200_000);
  await sendingC;
  a.client.close(); // A goes away: what it held is given back
  assert.ok((await holding) instanceof Error);
  assert.equal(budget.used, 0);
});

Deno.test("readFrame() closes a connection that dribbles past the read deadline", async () => {
  await using p = await pair();
  await send(p.client, header(1000));
  const dribble = setInterval(() => p.client.write(new Uint8Array(1)).catch(() => {}), 20);
  try {
    const e = await refusal(readFrame(p.server, new FrameBudget(1 << 20), 300));
    assert.equal(e.reason, "slow");
    assert.match(e.message, /within 300 ms/);
  } finally {
    clearInterval(dribble);
  }
});
