/**
 * The netlink requests of link kinds this kernel lacks (ipvlan): checked as built, since
 * the kernel here answers "Operation not supported" and no link can be inspected.
 */
import assert from "node:assert/strict";
import {
  attrStr,
  attrU32,
  type MsgWriter,
  type NlMsg,
  parseAttrs,
  splitMessages,
  viewOf,
} from "./_msg.ts";
import type { NlSocket } from "./_socket.ts";
import { IFLA, IFLA_INFO, RTM } from "./link.ts";
import { addIpvlan, addMacvlan } from "./link_add.ts";

/** A socket that records what would be sent and answers with an ACK. */
function recorder(): { sock: NlSocket; sent: NlMsg[] } {
  const sent: NlMsg[] = [];
  const sock = {
    request(_op: string, w: MsgWriter) {
      sent.push(...splitMessages(w.finish(1)));
      return [];
    },
  } as unknown as NlSocket;
  return { sock, sent };
}

/** The IFLA_LINKINFO nest of a link request: kind and the raw IFLA_INFO_DATA attributes. */
function linkInfo(msg: NlMsg) {
  const attrs = parseAttrs(msg.body, 16);
  const info = parseAttrs(attrs.get(IFLA.LINKINFO)!);
  const data = info.get(IFLA_INFO.DATA);
  return { attrs, kind: attrStr(info, IFLA_INFO.KIND), data: data ? parseAttrs(data) : undefined };
}

function u16(a: Map<number, Uint8Array>, type: number): number | undefined {
  const b = a.get(type);
  return b ? viewOf(b).getUint16(0, true) : undefined;
}

for (const [mode, value] of [["l2", 0], ["l3", 1], ["l3s", 2]] as const) {
  Deno.test(`addIpvlan() asks for kind "ipvlan" in mode ${mode} on the master`, () => {
    const { sock, sent } = recorder();
    addIpvlan(sock, { name: "ppiv0", master: 7, mode, mtu: 1400 });
    assert.equal(sent.length, 1);
    assert.equal(sent[0].type, RTM.NEWLINK);
    const { attrs, kind, data } = linkInfo(sent[0]);
    assert.equal(attrStr(attrs, IFLA.IFNAME), "ppiv0");
    assert.equal(attrU32(attrs, IFLA.LINK), 7);
    assert.equal(attrU32(attrs, IFLA.MTU), 1400);
    assert.equal(kind, "ipvlan");
    assert.equal(u16(data!, 1 /* IFLA_IPVLAN_MODE */), value);
  });
}

Deno.test("addIpvlan() refuses an unknown mode before sending anything", () => {
  const { sock, sent } = recorder();
  // deno-lint-ignore no-explicit-any
  assert.throws(() => addIpvlan(sock, { name: "ppiv0", master: 7, mode: "l4" as any }), RangeError);
  assert.equal(sent.length, 0);
});

Deno.test('addMacvlan() asks for kind "macvlan" with the mode\'s kernel value', () => {
  const { sock, sent } = recorder();
  addMacvlan(sock, { name: "ppmv0", master: 3, mode: "vepa" });
  const { attrs, kind, data } = linkInfo(sent[0]);
  assert.equal(kind, "macvlan");
  assert.equal(attrU32(attrs, IFLA.LINK), 3);
  assert.equal(attrU32(data!, 1 /* IFLA_MACVLAN_MODE */), 2 /* MACVLAN_MODE_VEPA */);
});

Deno.test("addMacvlan() and addIpvlan() send the link group at creation, and none when unset", () => {
  const { sock, sent } = recorder();
  addMacvlan(sock, { name: "ppmv0", master: 7, mode: "bridge", group: 4242 });
  addIpvlan(sock, { name: "ppiv0", master: 7, mode: "l2", group: 4243 });
  addMacvlan(sock, { name: "ppmv1", master: 7, mode: "bridge" });
  assert.deepEqual(sent.map((m) => attrU32(linkInfo(m).attrs, IFLA.GROUP)), [
    4242,
    4243,
    undefined,
  ]);
});
