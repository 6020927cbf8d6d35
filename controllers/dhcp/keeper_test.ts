import assert from "node:assert/strict";
import { BOOTREPLY, encodeMessage, ipBytes, MSG, OPT } from "../../delegates/ipam/dhcp/message.ts";
import { toHex } from "../../delegates/ipam/dhcp/_hex.ts";
import { FakeClock, testContext } from "../testing.ts";
import { LeaseKeeper } from "./keeper.ts";
import type { LeaseRecord } from "./lease_store.ts";
import { startDhcp } from "./keeper_server.ts";

// No root needed: the pods' netns paths do not exist, so a renewal finds the pod gone (as
// after a DEL the keeper missed) and the keeper stops keeping that lease.

const T0 = Date.UTC(2026, 0, 1);

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

/** A lease record bound at `boundAt` for `leaseSec` (T1 half of it, T2 7/8). */
function record(id: string, boundAt: number, leaseSec: number, netns: string): LeaseRecord {
  const ack = encodeMessage({
    op: BOOTREPLY,
    xid: 1,
    secs: 0,
    flags: 0,
    ciaddr: "0.0.0.0",
    yiaddr: "10.166.1.20",
    siaddr: "10.166.1.1",
    giaddr: "0.0.0.0",
    chaddr: Uint8Array.of(2, 0x42, 0xac, 0x11, 0, 2),
    options: new Map([
      [OPT.MESSAGE_TYPE, Uint8Array.of(MSG.ACK)],
      [OPT.SUBNET_MASK, ipBytes("255.255.255.0")],
      [OPT.SERVER_ID, ipBytes("10.166.1.1")],
      [OPT.LEASE_TIME, u32(leaseSec)],
    ]),
  });
  return {
    clientId: id,
    containerId: id,
    netName: "lan",
    ifname: "net1",
    netns,
    options: [],
    ack: toHex(ack),
    boundAt,
    serverId: "10.166.1.1",
    address: "10.166.1.20",
    mac: "02:42:ac:11:00:02",
  };
}

async function stateDirWith(records: LeaseRecord[]): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "ppk-dhcp-" });
  for (const r of records) {
    await Deno.writeTextFile(`${dir}/${encodeURIComponent(r.clientId)}.json`, JSON.stringify(r));
  }
  return dir;
}

const files = async (dir: string) => (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
const gone = "/run/netns/ppk-no-such-netns";
const opts = { timeoutMs: 1000, resendMaxMs: 1000, resendTimeoutMs: 1000 };

Deno.test("LeaseKeeper.resume() drops a lease past its expiry and times the others by the clock", async () => {
  const dir = await stateDirWith([
    record("old", T0 - 200_000, 100, gone),
    record("live", T0 - 10_000, 100, gone),
  ]);
  try {
    const ctx = testContext(new FakeClock(T0));
    const keeper = new LeaseKeeper({ ...opts, stateDir: dir, log: ctx.log, clock: ctx.clock });
    assert.equal(await keeper.resume(), 1);
    assert.deepEqual(keeper.held, ["live"]);
    assert.deepEqual(await files(dir), ["live.json"]);
    assert.ok(ctx.lines.some((l) => /old: the lease of 10\.166\.1\.20 expired/.test(l)));
    assert.equal(ctx.clock.pending, 1, "one renewal timer, at T1");
    // T1 is 50 s after binding, 40 s from now: nothing happens before it.
    await ctx.clock.advance(39_000);
    assert.deepEqual(keeper.held, ["live"]);
    await ctx.clock.advance(1_000);
    await keeper.close(); // waits for the renewal under way
    assert.deepEqual(keeper.held, []);
    assert.ok(ctx.lines.some((l) => /live: The netns ".*" is gone: no longer keeping/.test(l)));
    assert.deepEqual(await files(dir), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("LeaseKeeper.expireDue() gives up a lease whose timer came late, keeps the rest", async () => {
  const dir = await stateDirWith([
    record("short", T0, 100, gone),
    record("long", T0, 10_000, gone),
  ]);
  try {
    const clock = new FakeClock(T0);
    const ctx = testContext(clock);
    const keeper = new LeaseKeeper({ ...opts, stateDir: dir, log: ctx.log, clock });
    await keeper.resume();
    assert.deepEqual(await keeper.expireDue(), []);
    // A suspended machine: time jumps without the timers having run.
    clock.jump(150_000);
    assert.deepEqual(await keeper.expireDue(), ["short"]);
    assert.deepEqual(keeper.held, ["long"]);
    assert.deepEqual(await files(dir), ["long.json"]);
    await keeper.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("startDhcp() listens 0600, answers status, reconciles at any time, closes twice", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ppk-dhcp-" });
  try {
    const ctx = testContext(new FakeClock(T0));
    const c = await startDhcp({
      ...ctx,
      settings: { ...opts, socket: `${dir}/dhcp.sock`, stateDir: `${dir}/leases` },
    });
    assert.equal(c.name, "dhcp");
    assert.equal(Deno.statSync(`${dir}/dhcp.sock`).mode! & 0o777, 0o600);
    const conn = await Deno.connect({ transport: "unix", path: `${dir}/dhcp.sock` });
    await conn.write(new TextEncoder().encode(JSON.stringify({ op: "status" }) + "\n"));
    const reply = new TextDecoder().decode(await new Response(conn.readable).bytes());
    assert.deepEqual(JSON.parse(reply), { ok: true });
    await Promise.all([c.reconcile(), c.reconcile()]);
    await assert.rejects(
      () => startDhcp({ ...ctx, settings: { ...opts, socket: c.socket, stateDir: dir } }),
      /another lease keeper answers there/,
    );
    await c.close();
    await c.close();
    await c.reconcile();
    assert.throws(() => Deno.statSync(`${dir}/dhcp.sock`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
