import assert from "node:assert/strict";
import fc from "fast-check";
import { CniError } from "./errors.ts";
import {
  addIp,
  canonicalCidr,
  compareIp,
  contains,
  formatCidr,
  formatIp,
  ipFromBytes,
  ipToBytes,
  isIPv4,
  lastAddress,
  networkString,
  nextIp,
  overlaps,
  parseCidr,
  parseIp,
  prevIp,
  tryParseIp,
} from "./ip.ts";

function roundTrip(text: string): string {
  return formatIp(parseIp(text));
}

Deno.test("parseIp() reads dotted IPv4 and rejects bad octets", () => {
  assert.deepEqual(parseIp("10.1.0.5"), { family: 4, value: 0x0a010005n });
  for (
    const bad of ["10.1.0", "10.1.0.256", "10.01.0.5", "10.1.0.5.6", "a.b.c.d", "", " 1.2.3.4"]
  ) {
    assert.equal(tryParseIp(bad), undefined, bad);
  }
});

Deno.test("parseIp() reads IPv6 forms and rejects malformed ones", () => {
  assert.equal(parseIp("::").value, 0n);
  assert.equal(parseIp("::1").value, 1n);
  assert.equal(parseIp("fd00::").value, 0xfd00n << 112n);
  assert.equal(parseIp("1:2:3:4:5:6:7:8").value, 0x00010002000300040005000600070008n);
  assert.equal(parseIp("::1.2.3.4").value, 0x01020304n);
  for (
    const bad of [
      "1:2:3:4:5:6:7:8:9",
      "1::2::3",
      "1:2:3:4:5:6:7::8",
      "12345::",
      "fe80::1%eth0",
      "1:2:3:4:5:6:7:8::",
      ":1",
      "1:",
    ]
  ) {
    assert.equal(tryParseIp(bad), undefined, bad);
  }
});

Deno.test("parseIp() treats IPv4-mapped IPv6 as IPv4, as Go does", () => {
  assert.deepEqual(parseIp("::ffff:10.0.0.1"), parseIp("10.0.0.1"));
  assert.equal(roundTrip("::ffff:a00:1"), "10.0.0.1");
});

Deno.test("parseIp() errors carry code 7 and name the field and value", () => {
  assert.throws(() => parseIp("nope", "gateway"), (e: unknown) => {
    assert.ok(e instanceof CniError);
    assert.equal(e.code, 7);
    assert.equal(e.message, `Invalid "gateway": "nope" is not an IP address`);
    return true;
  });
});

Deno.test("formatIp() prints IPv6 as Go does (RFC 5952)", () => {
  const cases: Array<[string, string]> = [
    ["2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // first of two equal runs
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // one zero group stays
    ["0:0:0:0:0:0:0:0", "::"],
    ["fe80:0:0:0:0:0:0:0", "fe80::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["1:0:0:2:0:0:0:3", "1:0:0:2::3"], // longest run wins
    ["::1.2.3.4", "::102:304"],
  ];
  for (const [input, want] of cases) assert.equal(roundTrip(input), want, input);
});

Deno.test("formatIp() and parseIp() round-trip every address", () => {
  fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (v) => {
    const ip = { family: 6 as const, value: v };
    const back = parseIp(formatIp(ip));
    if (v >> 32n === 0xffffn) return back.family === 4 && back.value === (v & 0xffffffffn);
    return back.family === 6 && back.value === v;
  }));
  fc.assert(fc.property(fc.bigInt({ min: 0n, max: 0xffffffffn }), (v) => {
    return parseIp(formatIp({ family: 4, value: v })).value === v;
  }));
});

Deno.test("parseCidr() returns the address, prefix, family and network", () => {
  const c = parseCidr("10.1.0.5/24");
  assert.equal(formatIp(c.ip), "10.1.0.5");
  assert.equal(c.prefix, 24);
  assert.equal(c.family, 4);
  assert.equal(formatIp(c.network), "10.1.0.0");
  assert.equal(networkString(c), "10.1.0.0/24");
  assert.equal(networkString(parseCidr("fd00:0:0:0:1::5/64")), "fd00::/64");
  assert.equal(canonicalCidr("FD00:0::05/64"), "fd00::5/64");
  assert.equal(networkString(parseCidr("::ffff:10.0.0.1/120")), "10.0.0.0/24");
});

Deno.test("parseCidr() rejects a missing or too long prefix with code 7", () => {
  for (const bad of ["10.1.0.5", "10.1.0.5/33", "fd00::/129", "10.1.0.5/", "10.1.0.5/x", "x/24"]) {
    assert.throws(() => parseCidr(bad, "subnet"), (e: unknown) => {
      return e instanceof CniError && e.code === 7 && e.message.includes(`"subnet"`) &&
        e.message.includes(bad);
    }, bad);
  }
});

Deno.test("lastAddress() gives the broadcast and the last IPv6 address", () => {
  assert.equal(formatIp(lastAddress(parseCidr("10.1.0.0/24"))), "10.1.0.255");
  assert.equal(formatIp(lastAddress(parseCidr("10.1.0.0/31"))), "10.1.0.1");
  assert.equal(formatIp(lastAddress(parseCidr("fd00::/120"))), "fd00::ff");
});

Deno.test("contains() and overlaps() respect family and prefix", () => {
  const net = parseCidr("10.1.0.0/16");
  assert.ok(contains(net, parseIp("10.1.255.255")));
  assert.ok(!contains(net, parseIp("10.2.0.0")));
  assert.ok(!contains(net, parseIp("::a01:1")));
  assert.ok(overlaps(net, parseCidr("10.1.4.0/24")));
  assert.ok(overlaps(parseCidr("10.1.4.0/24"), net));
  assert.ok(!overlaps(net, parseCidr("10.2.0.0/16")));
});

Deno.test("nextIp() and prevIp() step and wrap like Go's ip.NextIP", () => {
  assert.equal(formatIp(nextIp(parseIp("10.0.0.255"))), "10.0.1.0");
  assert.equal(formatIp(prevIp(parseIp("10.0.1.0"))), "10.0.0.255");
  assert.equal(formatIp(nextIp(parseIp("255.255.255.255"))), "0.0.0.0");
  assert.equal(formatIp(nextIp(parseIp("fd00::ffff"))), "fd00::1:0");
  assert.equal(formatIp(addIp(parseIp("10.0.0.1"), 256)), "10.0.1.1");
});

Deno.test("ipToBytes() and ipFromBytes() use network order", () => {
  assert.deepEqual(ipToBytes(parseIp("10.1.2.3")), new Uint8Array([10, 1, 2, 3]));
  assert.equal(formatIp(ipFromBytes(ipToBytes(parseIp("fd00::1")))), "fd00::1");
  assert.throws(() => ipFromBytes(new Uint8Array(5)), CniError);
});

Deno.test("isIPv4(), compareIp() and formatCidr() agree with the parsed family", () => {
  assert.ok(isIPv4("10.0.0.1"));
  assert.ok(!isIPv4("fd00::1"));
  assert.ok(!isIPv4("garbage"));
  assert.equal(compareIp(parseIp("10.0.0.1"), parseIp("10.0.0.2")), -1);
  assert.equal(compareIp(parseIp("fd00::1"), parseIp("10.0.0.2")), 1);
  assert.equal(formatCidr(parseIp("fd00::5"), 64), "fd00::5/64");
});
