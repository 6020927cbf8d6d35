import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import fc from "fast-check";
import { CniError } from "./errors.ts";
import { convertResult, ipFamily, isCidr, isIp, reencodeResult, toCanonical } from "./result.ts";
import type { CniResult } from "./types.ts";

function codeOf(fn: () => unknown): number {
  try {
    fn();
  } catch (e) {
    if (e instanceof CniError) return e.code;
    throw e;
  }
  throw new Error("expected a CniError");
}

const full: CniResult = {
  cniVersion: "1.1.0",
  interfaces: [
    { name: "cni0", mac: "aa:bb:cc:dd:ee:01" },
    {
      name: "eth0",
      mac: "aa:bb:cc:dd:ee:02",
      mtu: 1400,
      sandbox: "/run/netns/x",
      socketPath: "/s",
      pciID: "0000:00:01.0",
    },
  ],
  ips: [
    { interface: 1, address: "10.1.0.5/24", gateway: "10.1.0.1" },
    { interface: 1, address: "fd00::5/64", gateway: "fd00::1" },
    { interface: 1, address: "10.2.0.5/24" },
  ],
  routes: [
    { dst: "0.0.0.0/0", gw: "10.1.0.1", mtu: 1300, advmss: 1200, priority: 5, table: 0, scope: 0 },
    { dst: "::/0", gw: "fd00::1" },
    { dst: "192.168.0.0/16" },
  ],
  dns: { nameservers: ["10.1.0.1"], domain: "example", search: ["a"], options: ["ndots:2"] },
};

Deno.test("ipFamily() tells IPv4 from IPv6 addresses and CIDRs", () => {
  assertEquals(ipFamily("10.0.0.1/8"), 4);
  assertEquals(ipFamily("fd00::1"), 6);
  assertEquals(ipFamily("::ffff:1.2.3.4"), 6);
});

Deno.test("isIp() and isCidr() accept addresses and reject garbage", () => {
  assertEquals(isIp("10.0.0.1"), true);
  assertEquals(isIp("fd00::1"), true);
  assertEquals(isIp("::ffff:1.2.3.4"), true);
  assertEquals(isIp("256.0.0.1"), false);
  assertEquals(isIp("fd00:::1"), false);
  assertEquals(isIp("host.example"), false);
  assertEquals(isCidr("10.0.0.1/32"), true);
  assertEquals(isCidr("10.0.0.1/33"), false);
  assertEquals(isCidr("fd00::1/128"), true);
  assertEquals(isCidr("fd00::1/129"), false);
  assertEquals(isCidr("10.0.0.1"), false);
});

Deno.test("convertResult() to 1.1.0 keeps every field", () => {
  const out = convertResult(full, "1.1.0");
  assertEquals(toCanonical(out), full);
  assertEquals((out.interfaces as Array<Record<string, unknown>>)[1].mtu, 1400);
  assertEquals((out.routes as Array<Record<string, unknown>>)[0].table, 0);
});

Deno.test("convertResult() to 1.0.0 only changes cniVersion", () => {
  const out = convertResult(full, "1.0.0");
  assertEquals(out.cniVersion, "1.0.0");
  assertEquals({ ...out, cniVersion: "1.1.0" }, convertResult(full, "1.1.0"));
});

for (const v of ["0.3.0", "0.3.1", "0.4.0"]) {
  Deno.test(`convertResult() to ${v} adds ips[].version by family`, () => {
    const ips = convertResult(full, v).ips as Array<Record<string, unknown>>;
    assertEquals(ips.map((ip) => ip.version), ["4", "6", "4"]);
    assertEquals(ips[0], {
      version: "4",
      interface: 1,
      address: "10.1.0.5/24",
      gateway: "10.1.0.1",
    });
  });
  Deno.test(`convertResult() to ${v} drops the 1.1 interface and route fields`, () => {
    const out = convertResult(full, v);
    assertEquals(out.interfaces, [
      { name: "cni0", mac: "aa:bb:cc:dd:ee:01" },
      { name: "eth0", mac: "aa:bb:cc:dd:ee:02", sandbox: "/run/netns/x" },
    ]);
    assertEquals(out.routes, [
      { dst: "0.0.0.0/0", gw: "10.1.0.1" },
      { dst: "::/0", gw: "fd00::1" },
      { dst: "192.168.0.0/16" },
    ]);
    assertEquals(out.dns, full.dns);
  });
}

for (const v of ["0.1.0", "0.2.0"]) {
  Deno.test(`convertResult() to ${v} keeps the first IPv4 and IPv6 with their routes`, () => {
    assertEquals(convertResult(full, v), {
      cniVersion: v,
      ip4: {
        ip: "10.1.0.5/24",
        gateway: "10.1.0.1",
        routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }, { dst: "192.168.0.0/16" }],
      },
      ip6: { ip: "fd00::5/64", gateway: "fd00::1", routes: [{ dst: "::/0", gw: "fd00::1" }] },
      dns: full.dns,
    });
  });
  Deno.test(`convertResult() to ${v} drops routes of a family without an address`, () => {
    const r: CniResult = {
      cniVersion: "1.1.0",
      ips: [{ address: "10.0.0.2/24" }],
      routes: [{ dst: "::/0" }, { dst: "0.0.0.0/0" }],
    };
    assertEquals(convertResult(r, v), {
      cniVersion: v,
      ip4: { ip: "10.0.0.2/24", routes: [{ dst: "0.0.0.0/0" }] },
    });
  });
  Deno.test(`convertResult() to ${v} fails with code 1 without any IP`, () => {
    const r: CniResult = { cniVersion: "1.1.0", interfaces: [{ name: "eth0" }] };
    assertEquals(codeOf(() => convertResult(r, v)), 1);
  });
}

Deno.test("convertResult() rejects an unsupported target version with code 1", () => {
  assertEquals(codeOf(() => convertResult(full, "0.5.0")), 1);
  assertEquals(codeOf(() => convertResult(full, "2.0.0")), 1);
});

Deno.test("convertResult() omits empty lists and empty dns", () => {
  const r: CniResult = { cniVersion: "1.1.0", interfaces: [], ips: [], routes: [], dns: {} };
  assertEquals(convertResult(r, "1.0.0"), { cniVersion: "1.0.0" });
  assertEquals(convertResult(r, "0.4.0"), { cniVersion: "0.4.0" });
});

Deno.test("toCanonical() drops ips[].version when upgrading from 0.x", () => {
  const r = toCanonical({
    cniVersion: "0.4.0",
    interfaces: [{ name: "eth0", mtu: 9000 }],
    ips: [{ version: "4", interface: 0, address: "10.0.0.2/24" }],
  });
  assertEquals(r, {
    cniVersion: "1.1.0",
    interfaces: [{ name: "eth0" }],
    ips: [{ interface: 0, address: "10.0.0.2/24" }],
  });
});

Deno.test("toCanonical() reads 0.2.0 ip4/ip6 with their routes", () => {
  const r = toCanonical({
    cniVersion: "0.2.0",
    ip4: { ip: "10.0.0.2/24", gateway: "10.0.0.1", routes: [{ dst: "0.0.0.0/0" }] },
    ip6: { ip: "fd00::2/64", routes: [{ dst: "::/0", gw: "fd00::1" }] },
  });
  assertEquals(r, {
    cniVersion: "1.1.0",
    ips: [{ address: "10.0.0.2/24", gateway: "10.0.0.1" }, { address: "fd00::2/64" }],
    routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0", gw: "fd00::1" }],
  });
});

Deno.test("toCanonical() takes the fallback version only when the result names none", () => {
  const legacy = { ip4: { ip: "10.0.0.2/24" } };
  assertEquals(toCanonical(legacy).ips, [{ address: "10.0.0.2/24" }]);
  assertEquals(toCanonical(legacy, "1.0.0").ips, undefined);
  const named = { cniVersion: "0.1.0", ip4: { ip: "10.0.0.2/24" } };
  assertEquals(toCanonical(named, "1.0.0").ips, [{ address: "10.0.0.2/24" }]);
});

Deno.test("toCanonical() rejects garbage with code 6, or the code asked for", () => {
  assertEquals(codeOf(() => toCanonical("x")), 6);
  assertEquals(codeOf(() => toCanonical([])), 6);
  assertEquals(codeOf(() => toCanonical({ cniVersion: 1 })), 6);
  assertEquals(codeOf(() => toCanonical({ cniVersion: "1.0.0", ips: {} })), 6);
  assertEquals(codeOf(() => toCanonical({ cniVersion: "1.0.0", ips: [{ address: "x" }] })), 6);
  assertEquals(
    codeOf(() => toCanonical({ cniVersion: "1.0.0", ips: [{ address: "10.0.0.1" }] })),
    6,
  );
  assertEquals(
    codeOf(() =>
      toCanonical({ cniVersion: "1.0.0", ips: [{ address: "10.0.0.1/8", gateway: "g" }] })
    ),
    6,
  );
  assertEquals(codeOf(() => toCanonical({ cniVersion: "1.0.0", interfaces: [{ mac: "x" }] })), 6);
  assertEquals(codeOf(() => toCanonical({ cniVersion: "1.0.0", routes: [{ gw: "10.0.0.1" }] })), 6);
  assertEquals(codeOf(() => toCanonical({ cniVersion: "1.0.0", dns: { nameservers: "x" } })), 6);
  assertEquals(codeOf(() => toCanonical({ cniVersion: "0.2.0", ip4: "x" })), 6);
  assertEquals(codeOf(() => toCanonical("x", undefined, 7)), 7);
});

Deno.test("toCanonical() rejects an unsupported result version with code 1", () => {
  assertEquals(codeOf(() => toCanonical({ cniVersion: "0.5.0" })), 1);
  assertThrows(() => toCanonical({ cniVersion: "banana" }), CniError);
});

Deno.test("reencodeResult() converts a 0.2.0 result to 1.0.0 and back", () => {
  const legacy = {
    cniVersion: "0.2.0",
    ip4: { ip: "10.0.0.2/24", routes: [{ dst: "0.0.0.0/0" }] },
  };
  const modern = reencodeResult(legacy, "1.0.0");
  assertEquals(modern, {
    cniVersion: "1.0.0",
    ips: [{ address: "10.0.0.2/24" }],
    routes: [{ dst: "0.0.0.0/0" }],
  });
  assertEquals(reencodeResult(modern, "0.2.0"), legacy);
});

// Property: for every version, parse(convert(r)) equals r restricted to what that version can
// say, and converting that again is stable.
const octet = fc.integer({ min: 0, max: 255 });
const v4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join("."));
const v6 = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 })
  .map((h) => h.map((x) => x.toString(16)).join(":"));
const cidr = fc.oneof(
  fc.tuple(v4, fc.integer({ min: 0, max: 32 })).map(([a, p]) => `${a}/${p}`),
  fc.tuple(v6, fc.integer({ min: 0, max: 128 })).map(([a, p]) => `${a}/${p}`),
);
const arbResult: fc.Arbitrary<CniResult> = fc.record({
  cniVersion: fc.constant("1.1.0"),
  interfaces: fc.array(
    fc.record({
      name: fc.string({ minLength: 1, maxLength: 15 }),
      mac: fc.constant("aa:bb:cc:dd:ee:ff"),
    }, {
      requiredKeys: ["name"],
    }),
    { minLength: 1, maxLength: 3 },
  ),
  ips: fc.array(fc.record({ address: cidr, interface: fc.nat(2) }), { minLength: 1, maxLength: 4 }),
  routes: fc.array(fc.record({ dst: cidr }), { minLength: 1, maxLength: 3 }),
});

Deno.test("parse(convert(r, v)) is stable for every version (property)", () => {
  for (const v of ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
    fc.assert(fc.property(arbResult, (r) => {
      const once = toCanonical(convertResult(r, v));
      assertEquals(toCanonical(convertResult(once, v)), once);
      if (v >= "0.3.0") assertEquals(once, JSON.parse(JSON.stringify(r)));
      else assertEquals(once.ips?.length, new Set(r.ips!.map((ip) => ipFamily(ip.address))).size);
    }));
  }
});
