import assert from "node:assert/strict";
import {
  BOOTREPLY,
  BOOTREQUEST,
  decodeClasslessRoutes,
  decodeDomainSearch,
  decodeMessage,
  DhcpFormatError,
  type DhcpMessage,
  encodeClasslessRoutes,
  encodeDomainSearch,
  encodeMessage,
  FLAG_BROADCAST,
  ipBytes,
  leaseOptions,
  macBytes,
  messageType,
  MSG,
  OPT,
  prefixOfMask,
} from "./message.ts";
import { leaseResult } from "./result.ts";
import { leaseTimes, retryDelayMs } from "./client.ts";

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

function ack(options: [number, Uint8Array][]): DhcpMessage {
  return {
    op: BOOTREPLY,
    xid: 0xdeadbeef,
    secs: 0,
    flags: FLAG_BROADCAST,
    ciaddr: "0.0.0.0",
    yiaddr: "10.206.1.20",
    siaddr: "10.206.1.1",
    giaddr: "0.0.0.0",
    chaddr: macBytes("02:42:ac:11:00:02"),
    options: new Map([[OPT.MESSAGE_TYPE, Uint8Array.of(MSG.ACK)], ...options]),
  };
}

Deno.test("encodeMessage() lays out the BOOTP header, cookie, options and END, padded to 300", () => {
  const m = ack([[OPT.SUBNET_MASK, ipBytes("255.255.255.0")]]);
  m.op = BOOTREQUEST;
  const b = encodeMessage(m);
  assert.equal(b.length, 300);
  assert.deepEqual([b[0], b[1], b[2]], [BOOTREQUEST, 1, 6]);
  assert.equal(new DataView(b.buffer).getUint32(4), 0xdeadbeef);
  assert.equal(new DataView(b.buffer).getUint16(10), 0x8000, "the BROADCAST flag");
  assert.deepEqual([...b.subarray(16, 20)], [10, 206, 1, 20]);
  assert.deepEqual([...b.subarray(28, 34)], [0x02, 0x42, 0xac, 0x11, 0x00, 0x02]);
  assert.deepEqual([...b.subarray(236, 240)], [99, 130, 83, 99]);
  assert.deepEqual([...b.subarray(240, 249)], [53, 1, 5, 1, 4, 255, 255, 255, 0]);
  assert.equal(b[249], 255, "END");
});

Deno.test("decodeMessage() reads back what encodeMessage() wrote", () => {
  const m = ack([[OPT.ROUTER, Uint8Array.of(10, 206, 1, 1, 10, 206, 1, 2)]]);
  const d = decodeMessage(encodeMessage(m));
  assert.equal(d.op, BOOTREPLY);
  assert.equal(d.xid, 0xdeadbeef);
  assert.equal(d.flags, FLAG_BROADCAST);
  assert.equal(d.yiaddr, "10.206.1.20");
  assert.equal(d.siaddr, "10.206.1.1");
  assert.deepEqual(d.chaddr, m.chaddr);
  assert.equal(messageType(d), MSG.ACK);
  assert.deepEqual(leaseOptions(d).routers, ["10.206.1.1", "10.206.1.2"]);
});

Deno.test("options longer than 255 bytes are split and joined again (RFC 3396)", () => {
  const long = Uint8Array.from({ length: 600 }, (_, i) => i & 0xff);
  const b = encodeMessage(ack([[OPT.DOMAIN_SEARCH, long]]));
  const d = decodeMessage(b);
  assert.deepEqual(d.options.get(OPT.DOMAIN_SEARCH), long);
});

Deno.test("decodeMessage() reads options overloaded into the file field (option 52)", () => {
  const b = encodeMessage(ack([[OPT.OVERLOAD, Uint8Array.of(1)]]));
  b.set([OPT.ROUTER, 4, 10, 206, 1, 9, OPT.END], 108);
  assert.deepEqual(leaseOptions(decodeMessage(b)).routers, ["10.206.1.9"]);
});

Deno.test("decodeMessage() refuses short messages, a missing cookie and truncated options", () => {
  assert.throws(() => decodeMessage(new Uint8Array(100)), DhcpFormatError);
  const b = encodeMessage(ack([]));
  b[236] = 0;
  assert.throws(() => decodeMessage(b), /magic cookie/);
  const t = encodeMessage(ack([]));
  t.set([OPT.ROUTER, 40], 243);
  assert.throws(() => decodeMessage(t.subarray(0, 260)), /runs past the end/);
});

Deno.test("leaseOptions() reads mask, router, DNS, domain, search, times, server id, T1/T2", () => {
  const d = decodeMessage(encodeMessage(ack([
    [OPT.SUBNET_MASK, ipBytes("255.255.252.0")],
    [OPT.ROUTER, ipBytes("10.206.1.1")],
    [OPT.DNS, Uint8Array.of(10, 206, 1, 53, 10, 206, 1, 54)],
    [OPT.DOMAIN_NAME, new TextEncoder().encode("lan.test\0")],
    [OPT.DOMAIN_SEARCH, encodeDomainSearch(["lan.test", "corp.test"])],
    [OPT.LEASE_TIME, u32(120)],
    [OPT.RENEWAL_TIME, u32(10)],
    [OPT.REBINDING_TIME, u32(20)],
    [OPT.SERVER_ID, ipBytes("10.206.1.1")],
    [OPT.HOST_NAME, new TextEncoder().encode("pod-a")],
  ])));
  const o = leaseOptions(d);
  assert.equal(o.prefix, 22);
  assert.deepEqual(o.routers, ["10.206.1.1"]);
  assert.deepEqual(o.dns, ["10.206.1.53", "10.206.1.54"]);
  assert.equal(o.domain, "lan.test");
  assert.deepEqual(o.search, ["lan.test", "corp.test"]);
  assert.equal(o.serverId, "10.206.1.1");
  assert.equal(o.hostName, "pod-a");
  assert.deepEqual(leaseTimes(o), { lease: 120, t1: 10, t2: 20 });
});

Deno.test("leaseTimes() defaults to 1 h, T1 50 % and T2 85 % (the reference's defaults)", () => {
  assert.deepEqual(leaseTimes({ routers: [], dns: [], search: [], staticRoutes: [] }), {
    lease: 3600,
    t1: 1800,
    t2: 3060,
  });
  const o = { routers: [], dns: [], search: [], staticRoutes: [], leaseTime: 200 };
  assert.deepEqual(leaseTimes(o), { lease: 200, t1: 100, t2: 170 });
});

Deno.test("prefixOfMask() accepts contiguous masks only", () => {
  assert.equal(prefixOfMask(ipBytes("255.255.255.255")), 32);
  assert.equal(prefixOfMask(ipBytes("255.128.0.0")), 9);
  assert.equal(prefixOfMask(ipBytes("0.0.0.0")), 0);
  assert.throws(() => prefixOfMask(ipBytes("255.0.255.0")), /not contiguous/);
});

Deno.test("classless static routes (option 121) round-trip, widths 0 to 32", () => {
  const routes = [
    { dst: "0.0.0.0/0", gw: "10.206.1.1" },
    { dst: "10.0.0.0/8", gw: "10.206.1.2" },
    { dst: "10.207.128.0/17", gw: "0.0.0.0" },
    { dst: "192.0.2.7/32", gw: "10.206.1.3" },
  ];
  const enc = encodeClasslessRoutes(routes);
  assert.deepEqual([...enc.subarray(0, 5)], [0, 10, 206, 1, 1], "width 0 has no octets");
  assert.deepEqual(decodeClasslessRoutes(enc), routes);
  assert.throws(() => decodeClasslessRoutes(Uint8Array.of(33, 1, 2, 3, 4, 5)), /exceeds 32/);
  assert.throws(() => decodeClasslessRoutes(Uint8Array.of(24, 10, 1)), /truncated/);
});

Deno.test("domain search (option 119) follows compression pointers and refuses loops", () => {
  // "lan.test" then "corp" + pointer to "test" at offset 4.
  const v = Uint8Array.of(3, 108, 97, 110, 4, 116, 101, 115, 116, 0, 4, 99, 111, 114, 112, 0xc0, 4);
  assert.deepEqual(decodeDomainSearch(v), ["lan.test", "corp.test"]);
  assert.throws(() => decodeDomainSearch(Uint8Array.of(0xc0, 0)), /loop/);
  assert.throws(() => decodeDomainSearch(Uint8Array.of(5, 97)), /truncated/);
});

Deno.test("leaseResult() gives the reference's result: ip with gateway, default route", () => {
  const o = leaseOptions(decodeMessage(encodeMessage(ack([
    [OPT.SUBNET_MASK, ipBytes("255.255.255.0")],
    [OPT.ROUTER, ipBytes("10.206.1.1")],
    [OPT.STATIC_ROUTES, Uint8Array.of(172, 16, 0, 0, 10, 206, 1, 7)],
  ]))));
  assert.deepEqual(leaseResult("10.206.1.20", o), {
    cniVersion: "1.1.0",
    ips: [{ address: "10.206.1.20/24", gateway: "10.206.1.1" }],
    routes: [
      { dst: "172.16.0.0/16", gw: "10.206.1.7" },
      { dst: "0.0.0.0/0", gw: "10.206.1.1" },
    ],
  });
});

Deno.test("leaseResult() takes only option 121's routes when present, on-link ones scoped link", () => {
  const o = leaseOptions(decodeMessage(encodeMessage(ack([
    [OPT.SUBNET_MASK, ipBytes("255.255.255.0")],
    [OPT.ROUTER, ipBytes("10.206.1.1")],
    [OPT.DNS, ipBytes("10.206.1.53")],
    [OPT.STATIC_ROUTES, Uint8Array.of(172, 16, 0, 0, 10, 206, 1, 7)],
    [
      OPT.CLASSLESS_ROUTES,
      encodeClasslessRoutes([
        { dst: "10.207.0.0/16", gw: "10.206.1.254" },
        { dst: "10.208.0.0/16", gw: "0.0.0.0" },
      ]),
    ],
  ]))));
  const r = leaseResult("10.206.1.20", o, 300);
  assert.deepEqual(r.routes, [
    { dst: "10.207.0.0/16", gw: "10.206.1.254", priority: 300 },
    { dst: "10.208.0.0/16", gw: "0.0.0.0", scope: 253, priority: 300 },
  ]);
  assert.deepEqual(r.dns, { nameservers: ["10.206.1.53"] });
});

Deno.test("leaseResult() fails when the ACK has no subnet mask", () => {
  const o = leaseOptions(decodeMessage(encodeMessage(ack([]))));
  assert.throws(() => leaseResult("10.206.1.20", o), /Subnet Mask not found/);
});

Deno.test("retryDelayMs() retries fast four times, then doubles from 4 s up to resendMax", () => {
  const mid = () => 0.5; // no jitter
  assert.deepEqual([0, 1, 2, 3].map((n) => retryDelayMs(n, 62_000, mid)), [2000, 2000, 2000, 2000]);
  assert.deepEqual(
    [4, 5, 6, 7, 8, 9].map((n) => retryDelayMs(n, 62_000, mid)),
    [4000, 8000, 16000, 32000, 62000, 62000],
  );
  assert.equal(retryDelayMs(0, 62_000, () => 0), 1000, "jitter -1 s");
});
