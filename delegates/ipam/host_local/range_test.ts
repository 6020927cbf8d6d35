import assert from "node:assert/strict";
import { CniError } from "../../../conf/errors.ts";
import { formatIp, parseIp } from "../../../conf/ip.ts";
import {
  checkRangeSets,
  parseRange,
  parseRangeSet,
  rangeContains,
  rangeSetString,
  subnetString,
} from "./range.ts";

function rejects(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CniError, `not a CniError: ${e}`);
    assert.equal(e.code, 7);
    for (const p of parts) assert.ok(e.message.includes(p), `"${e.message}" lacks "${p}"`);
    return true;
  });
}

Deno.test("parseRange() defaults gateway and rangeStart to network+1 and rangeEnd before broadcast", () => {
  const r = parseRange({ subnet: "10.1.2.0/24" }, "r");
  assert.equal(subnetString(r), "10.1.2.0/24");
  assert.equal(formatIp(r.gateway), "10.1.2.1");
  assert.equal(formatIp(r.rangeStart), "10.1.2.1");
  assert.equal(formatIp(r.rangeEnd), "10.1.2.254");
});

Deno.test("parseRange() ends an IPv6 range at the subnet's last address", () => {
  const r = parseRange({ subnet: "fd00:0:0:0::/64" }, "r");
  assert.equal(formatIp(r.rangeStart), "fd00::1");
  assert.equal(formatIp(r.rangeEnd), "fd00::ffff:ffff:ffff:ffff");
  assert.equal(formatIp(r.gateway), "fd00::1");
});

Deno.test("parseRange() keeps given gateway, rangeStart and rangeEnd", () => {
  const r = parseRange(
    {
      subnet: "10.1.2.0/24",
      gateway: "10.1.2.254",
      rangeStart: "10.1.2.10",
      rangeEnd: "10.1.2.20",
    },
    "r",
  );
  assert.equal(formatIp(r.gateway), "10.1.2.254");
  assert.equal(rangeSetString([r]), "10.1.2.10-10.1.2.20");
});

Deno.test("parseRange() treats an empty string as not set, as Go's net.IP does", () => {
  const r = parseRange({ subnet: "10.1.2.0/24", rangeStart: "", gateway: "" }, "r");
  assert.equal(formatIp(r.rangeStart), "10.1.2.1");
  assert.equal(formatIp(r.gateway), "10.1.2.1");
});

Deno.test("parseRange() matches keys case-insensitively, as Go's JSON decoder", () => {
  const r = parseRange({ Subnet: "10.1.2.0/24", RangeStart: "10.1.2.5" }, "r");
  assert.equal(formatIp(r.rangeStart), "10.1.2.5");
});

Deno.test("parseRange() rejects a missing or malformed subnet", () => {
  rejects(() => parseRange({}, "ipam.ranges[0][0]"), "ipam.ranges[0][0].subnet");
  rejects(() => parseRange({ subnet: "10.1.2.0" }, "r"), "10.1.2.0");
  rejects(() => parseRange({ subnet: 5 }, "r"), "r.subnet");
  rejects(() => parseRange("10.0.0.0/8", "r"), "r");
});

Deno.test("parseRange() rejects /31, /32, /127 and /128 as too small", () => {
  for (const s of ["10.1.2.0/31", "10.1.2.0/32", "fd00::/127", "fd00::/128"]) {
    rejects(() => parseRange({ subnet: s }, "r"), s, "too small");
  }
  parseRange({ subnet: "10.1.2.0/30" }, "r");
  parseRange({ subnet: "fd00::/126" }, "r");
});

Deno.test("parseRange() rejects a subnet with host bits set, naming the network address", () => {
  rejects(() => parseRange({ subnet: "10.1.2.5/24" }, "r"), "10.1.2.5/24", "10.1.2.0");
});

Deno.test("parseRange() rejects rangeStart and rangeEnd outside the subnet or reversed", () => {
  rejects(() => parseRange({ subnet: "10.1.2.0/24", rangeStart: "10.1.3.1" }, "r"), "r.rangeStart");
  rejects(() => parseRange({ subnet: "10.1.2.0/24", rangeEnd: "10.1.3.1" }, "r"), "r.rangeEnd");
  rejects(
    () => parseRange({ subnet: "10.1.2.0/24", rangeStart: "10.1.2.9", rangeEnd: "10.1.2.3" }, "r"),
    "after",
  );
  rejects(() => parseRange({ subnet: "10.1.2.0/24", gateway: "nope" }, "r"), "r.gateway");
  rejects(() => parseRange({ subnet: "10.1.2.0/24", rangeStart: "fd00::1" }, "r"), "rangeStart");
});

Deno.test("parseRangeSet() rejects an empty set, mixed families and overlapping ranges", () => {
  rejects(() => parseRangeSet([], "s"), "empty");
  rejects(() => parseRangeSet({}, "s"), "s");
  rejects(
    () => parseRangeSet([{ subnet: "10.1.2.0/24" }, { subnet: "fd00::/64" }], "s"),
    "mixed address families",
  );
  rejects(
    () => parseRangeSet([{ subnet: "10.1.0.0/16" }, { subnet: "10.1.2.0/24" }], "s"),
    "overlap",
  );
  const ok = parseRangeSet([
    { subnet: "10.1.2.0/24", rangeEnd: "10.1.2.100" },
    { subnet: "10.1.2.0/24", rangeStart: "10.1.2.101" },
  ], "s");
  assert.equal(ok.length, 2);
});

Deno.test("checkRangeSets() needs a set and rejects overlapping sets", () => {
  rejects(() => checkRangeSets([], "ipam.ranges"), "No IP ranges");
  const a = parseRangeSet([{ subnet: "10.1.2.0/24" }], "a");
  const b = parseRangeSet([{ subnet: "10.1.0.0/16" }], "b");
  rejects(() => checkRangeSets([a, b], "ipam.ranges"), "range set 0 overlaps with range set 1");
  checkRangeSets([a, parseRangeSet([{ subnet: "fd00::/64" }], "c")], "ipam.ranges");
});

Deno.test("rangeContains() bounds addresses by rangeStart and rangeEnd", () => {
  const r = parseRange(
    { subnet: "10.1.2.0/24", rangeStart: "10.1.2.10", rangeEnd: "10.1.2.20" },
    "r",
  );
  assert.ok(rangeContains(r, parseIp("10.1.2.10")));
  assert.ok(rangeContains(r, parseIp("10.1.2.20")));
  assert.ok(!rangeContains(r, parseIp("10.1.2.9")));
  assert.ok(!rangeContains(r, parseIp("10.1.2.21")));
  assert.ok(!rangeContains(r, parseIp("::a01:20a")));
});
