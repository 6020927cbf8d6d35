import assert from "node:assert/strict";
import { cidrBytes, formatIpBytes, formatMac, macBytes } from "./_inet.ts";
import {
  attrStr,
  attrU32,
  attrU8,
  MsgWriter,
  NLM_F,
  type NlMsg,
  parseAttrs,
  splitMessages,
  viewOf,
} from "./_msg.ts";
import type { NlSocket } from "./_socket.ts";
import { deleteGroup, IFLA, RTM } from "./link.ts";

Deno.test("MsgWriter writes the header, a struct and 4-byte aligned attributes", () => {
  const w = new MsgWriter(16, NLM_F.ACK);
  w.struct(16).setInt32(4, 7, true);
  w.str(3, "eth0").u8(9, 1).u32(4, 1500);
  const msg = w.finish(42);
  const v = viewOf(msg);
  assert.equal(v.getUint32(0, true), msg.length);
  assert.equal(v.getUint16(4, true), 16);
  assert.equal(v.getUint16(6, true), NLM_F.ACK | NLM_F.REQUEST);
  assert.equal(v.getUint32(8, true), 42);
  assert.equal(msg.length % 4, 0);
  // 16 header + 16 struct + (4+5→8) + (4+1→8) + 8
  assert.equal(msg.length, 16 + 16 + 12 + 8 + 8);
  const [m] = splitMessages(msg);
  assert.equal(viewOf(m.body).getInt32(4, true), 7);
  const a = parseAttrs(m.body, 16);
  assert.equal(attrStr(a, 3), "eth0");
  assert.equal(attrU8(a, 9), 1);
  assert.equal(attrU32(a, 4), 1500);
});

Deno.test("MsgWriter nests attributes with the NESTED flag and the right lengths", () => {
  const w = new MsgWriter(16, 0);
  w.struct(16);
  w.begin(18).str(1, "veth").begin(2).u32(5, 9).end().end();
  const [m] = splitMessages(w.finish(1));
  const body = m.body;
  const outer = viewOf(body.subarray(16));
  assert.equal(outer.getUint16(2, true), 18 | 0x8000);
  assert.equal(outer.getUint16(0, true), body.length - 16);
  const linkinfo = parseAttrs(body, 16).get(18)!;
  const inner = parseAttrs(linkinfo);
  assert.equal(attrStr(inner, 1), "veth");
  assert.equal(attrU32(parseAttrs(inner.get(2)!), 5), 9);
});

Deno.test("MsgWriter grows past its first buffer and be16 is network order", () => {
  const w = new MsgWriter(16, 0);
  w.struct(16);
  w.bytes(1, new Uint8Array(1000).fill(7)).be16(2, 4789);
  const a = parseAttrs(splitMessages(w.finish(1))[0].body, 16);
  assert.equal(a.get(1)!.length, 1000);
  assert.deepEqual([...a.get(2)!], [0x12, 0xb5]);
});

Deno.test("splitMessages() splits a datagram holding several messages", () => {
  const a = new MsgWriter(16, 0).u32(1, 1).finish(5);
  const b = new MsgWriter(3, 0).finish(5);
  const both = new Uint8Array(a.length + b.length);
  both.set(a);
  both.set(b, a.length);
  assert.deepEqual(splitMessages(both).map((m) => m.type), [16, 3]);
});

Deno.test("deleteGroup() sends ONE RTM_DELLINK with ifindex 0 and IFLA_GROUP", () => {
  const sent: NlMsg[] = [];
  const fake = {
    request(_op: string, w: MsgWriter) {
      sent.push(...splitMessages(w.finish(1)));
      return [];
    },
  } as unknown as NlSocket;
  deleteGroup(fake, 1234);
  assert.equal(sent.length, 1);
  assert.equal(sent[0].type, RTM.DELLINK);
  assert.equal(viewOf(sent[0].body).getInt32(4, true), 0);
  const a = parseAttrs(sent[0].body, 16);
  assert.equal(attrU32(a, IFLA.GROUP), 1234);
  assert.equal(a.has(IFLA.IFNAME), false);
});

Deno.test("deleteGroup() refuses group 0, which holds every ordinary link", () => {
  const fake = {
    request() {
      throw new Error("must not be sent");
    },
  } as unknown as NlSocket;
  assert.throws(() => deleteGroup(fake, 0), RangeError);
  assert.throws(() => deleteGroup(fake, -1), RangeError);
});

Deno.test("cidrBytes() gives address, network and last address", () => {
  const c = cidrBytes("10.1.2.3/20");
  assert.equal(c.family, 4);
  assert.equal(c.prefixLen, 20);
  assert.equal(formatIpBytes(c.bytes), "10.1.2.3");
  assert.equal(formatIpBytes(c.network), "10.1.0.0");
  assert.equal(formatIpBytes(c.last), "10.1.15.255");
  const h = cidrBytes("fd00::1");
  assert.equal(h.prefixLen, 128);
  assert.equal(formatIpBytes(cidrBytes("fd00:1:2:3::9/48").network), "fd00:1:2::");
});

Deno.test("macBytes() and formatMac() round-trip and reject garbage", () => {
  assert.equal(formatMac(macBytes("02:AB:cd:0:1:ff")), "02:ab:cd:00:01:ff");
  assert.throws(() => macBytes("02:ab:cd:00:01"), /Invalid MAC address/);
  assert.throws(() => macBytes("02:ab:cd:00:01:fg"), /Invalid MAC address/);
});
