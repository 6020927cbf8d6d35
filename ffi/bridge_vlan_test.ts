/**
 * Bridge VLAN requests, checked as built (a kernel without CONFIG_BRIDGE_VLAN_FILTERING, as
 * here, refuses them and leaves nothing to inspect), and what this kernel answers.
 */
import assert from "node:assert/strict";
import { isRoot, ppName, tempNetns } from "../tests/testutils.ts";
import {
  attrStr,
  attrU8,
  type MsgWriter,
  type NlMsg,
  parseAttrs,
  splitMessages,
  viewOf,
} from "./_msg.ts";
import type { NlSocket } from "./_socket.ts";
import {
  BRIDGE_FLAGS,
  BRIDGE_VLAN_INFO,
  bridgeVlanAdd,
  bridgeVlanDel,
  IFLA_AF_SPEC,
  IFLA_BR_VLAN_FILTERING,
  IFLA_BRIDGE,
  setBridgeVlanFiltering,
} from "./bridge_vlan.ts";
import { IFLA, IFLA_INFO, RTM } from "./link.ts";
import { Netlink, NetlinkError } from "./mod.ts";

const AF_BRIDGE = 7;

/** A socket that records what would be sent and answers with an ACK. */
function recorder(): { sock: NlSocket; sent: NlMsg[]; ops: string[] } {
  const sent: NlMsg[] = [];
  const ops: string[] = [];
  const sock = {
    request(op: string, w: MsgWriter) {
      ops.push(op);
      sent.push(...splitMessages(w.finish(1)));
      return [];
    },
  } as unknown as NlSocket;
  return { sock, sent, ops };
}

/** ifinfomsg family and index, and the attributes of IFLA_AF_SPEC. */
function afSpec(msg: NlMsg) {
  const ifi = viewOf(msg.body);
  const spec = parseAttrs(msg.body, 16).get(IFLA_AF_SPEC);
  assert.ok(spec, "IFLA_AF_SPEC is missing");
  return { family: ifi.getUint8(0), index: ifi.getInt32(4, true), spec: parseAttrs(spec) };
}

/** The {flags, vid} of IFLA_BRIDGE_VLAN_INFO. */
function vlanInfo(spec: Map<number, Uint8Array>): { flags: number; vid: number } {
  const b = spec.get(IFLA_BRIDGE.VLAN_INFO);
  assert.ok(b && b.length === 4, "IFLA_BRIDGE_VLAN_INFO is not 4 bytes");
  const v = viewOf(b);
  return { flags: v.getUint16(0, true), vid: v.getUint16(2, true) };
}

Deno.test("the bridge VLAN constants are the kernel's uapi values", () => {
  assert.equal(IFLA_AF_SPEC, 26);
  assert.equal(IFLA_BR_VLAN_FILTERING, 7);
  assert.deepEqual(IFLA_BRIDGE, { FLAGS: 0, MODE: 1, VLAN_INFO: 2 });
  assert.deepEqual(BRIDGE_FLAGS, { MASTER: 1, SELF: 2 });
  assert.deepEqual(BRIDGE_VLAN_INFO, { MASTER: 1, PVID: 2, UNTAGGED: 4 });
});

Deno.test("bridgeVlanAdd() sends an AF_BRIDGE SETLINK with the PVID and untagged flags", () => {
  const { sock, sent } = recorder();
  bridgeVlanAdd(sock, 12, { vid: 100, pvid: true, untagged: true });
  assert.equal(sent.length, 1);
  assert.equal(sent[0].type, RTM.SETLINK);
  const { family, index, spec } = afSpec(sent[0]);
  assert.equal(family, AF_BRIDGE);
  assert.equal(index, 12);
  assert.deepEqual(vlanInfo(spec), { flags: 2 | 4, vid: 100 });
  // No IFLA_BRIDGE_FLAGS: the kernel then hands the request to the port's master bridge.
  assert.equal(spec.has(IFLA_BRIDGE.FLAGS), false);
});

Deno.test("bridgeVlanAdd() builds the exact bytes of `bridge vlan add dev #12 vid 100`", () => {
  const { sock, sent } = recorder();
  bridgeVlanAdd(sock, 12, { vid: 100 });
  const body = [...sent[0].body];
  const ifinfomsg = [7, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  // nla_len 12, type IFLA_AF_SPEC | NLA_F_NESTED; inside: nla_len 8, type 2, flags 0, vid 100.
  const nest = [12, 0, 26, 0x80, 8, 0, 2, 0, 0, 0, 100, 0];
  assert.deepEqual(body, [...ifinfomsg, ...nest]);
});

Deno.test("bridgeVlanAdd() tags a trunk VLAN without flags, and marks `self` requests", () => {
  const { sock, sent } = recorder();
  bridgeVlanAdd(sock, 3, { vid: 4094 });
  bridgeVlanAdd(sock, 3, { vid: 20, self: true });
  assert.deepEqual(vlanInfo(afSpec(sent[0]).spec), { flags: 0, vid: 4094 });
  const self = afSpec(sent[1]).spec;
  assert.equal(viewOf(self.get(IFLA_BRIDGE.FLAGS)!).getUint16(0, true), BRIDGE_FLAGS.SELF);
  assert.deepEqual(vlanInfo(self), { flags: 0, vid: 20 });
});

Deno.test("bridgeVlanDel() sends an AF_BRIDGE DELLINK for the VLAN on the port", () => {
  const { sock, sent, ops } = recorder();
  bridgeVlanDel(sock, 9, 1);
  assert.equal(sent[0].type, RTM.DELLINK);
  const { family, index, spec } = afSpec(sent[0]);
  assert.equal(family, AF_BRIDGE);
  assert.equal(index, 9);
  assert.deepEqual(vlanInfo(spec), { flags: 0, vid: 1 });
  assert.equal(ops[0], "remove VLAN 1 from #9");
});

Deno.test("VLAN ids outside 1 to 4094 are refused before anything is sent", () => {
  const { sock, sent } = recorder();
  for (const vid of [0, 4095, 1.5, -1]) {
    assert.throws(() => bridgeVlanAdd(sock, 3, { vid }), RangeError);
    assert.throws(() => bridgeVlanDel(sock, 3, vid), RangeError);
  }
  assert.equal(sent.length, 0);
});

Deno.test("setBridgeVlanFiltering() changes the bridge's linkinfo data without CREATE", () => {
  const { sock, sent } = recorder();
  setBridgeVlanFiltering(sock, 5, true);
  setBridgeVlanFiltering(sock, 5, false);
  for (const [i, want] of [[0, 1], [1, 0]]) {
    const m = sent[i];
    assert.equal(m.type, RTM.NEWLINK);
    assert.equal(m.flags & 0x600, 0, "NLM_F_CREATE/EXCL must not be set on a change");
    assert.equal(viewOf(m.body).getInt32(4, true), 5);
    const info = parseAttrs(parseAttrs(m.body, 16).get(IFLA.LINKINFO)!);
    assert.equal(attrStr(info, IFLA_INFO.KIND), "bridge");
    const data = parseAttrs(info.get(IFLA_INFO.DATA)!);
    assert.equal(attrU8(data, IFLA_BR_VLAN_FILTERING), want);
  }
});

/** Reports a kernel that lacks a feature as an ignored step (never a pass). */
async function skipStep(t: Deno.TestContext, what: string, e: unknown): Promise<void> {
  await t.step({ name: `SKIPPED ${what}: ${(e as Error).message}`, ignore: true, fn() {} });
}

Deno.test(
  "bridge VLAN filtering works on a pp bridge, or is notsupported by this kernel",
  { ignore: !isRoot },
  async (t) => {
    await using ns = await tempNetns();
    using nl = Netlink.open(ns.path);
    const [br, port, peer] = [ppName("br"), ppName("v"), ppName("p")];
    nl.addBridge({ name: br });
    nl.addVeth({ name: port, peerName: peer });
    nl.setMaster(port, nl.requireLink(br).index);
    try {
      nl.setBridgeVlanFiltering(br, true);
    } catch (e) {
      assert.ok(e instanceof NetlinkError, String(e));
      assert.equal(e.kind, "notsupported", e.message);
      // Port VLANs are refused the same way; the bridge is left as it was.
      try {
        nl.bridgeVlanAdd(port, { vid: 10, pvid: true, untagged: true });
        assert.fail("a port VLAN was accepted without VLAN filtering");
      } catch (e3) {
        assert.ok(e3 instanceof NetlinkError && e3.kind === "notsupported", String(e3));
      }
      assert.equal(nl.requireLink(port).master, nl.requireLink(br).index);
      await skipStep(t, "bridge VLANs (kernel has no bridge VLAN filtering)", e);
      return;
    }
    nl.bridgeVlanAdd(port, { vid: 10, pvid: true, untagged: true });
    nl.bridgeVlanAdd(port, { vid: 20 });
    nl.bridgeVlanDel(port, 1);
    const out = new TextDecoder().decode(
      (await new Deno.Command("bridge", {
        args: ["-n", ns.name, "-j", "vlan", "show", "dev", port],
        stdout: "piped",
      }).output()).stdout,
    );
    const vlans = JSON.parse(out)[0].vlans as Array<{ vlan: number; flags?: string[] }>;
    assert.deepEqual(vlans.map((v) => v.vlan), [10, 20]);
    assert.deepEqual(vlans[0].flags?.sort(), ["Egress Untagged", "PVID"]);
  },
);
