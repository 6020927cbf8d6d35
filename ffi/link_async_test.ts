/**
 * Netlink.deleteGroupAsync(): the group delete whose kernel wait runs on a worker thread.
 * Runs as root in throwaway netns.
 */
import assert from "node:assert/strict";
import { Netlink } from "./netlink.ts";
import { NetlinkError } from "./errors.ts";
import { isRoot, ppName, tempNetns } from "../tests/testutils.ts";

const opts = { ignore: !isRoot };

function names(nl: Netlink): string[] {
  return nl.listLinks().map((l) => l.name).sort();
}

Deno.test("deleteGroupAsync() deletes exactly the links of that group", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const [a, b, c, d] = [ppName("a"), ppName("b"), ppName("c"), ppName("d")];
  nl.addVeth({ name: a, peerName: b, group: 31, peerGroup: 31 });
  nl.addVeth({ name: c, peerName: d, group: 32, peerGroup: 32 });
  const bridge = ppName("br");
  nl.addBridge({ name: bridge });
  nl.setGroup(bridge, 31);
  await nl.deleteGroupAsync(31);
  assert.deepEqual(names(nl), [c, d, "lo"].sort());
});

Deno.test("deleteGroupAsync() rejects the way deleteGroup() throws", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const err = await nl.deleteGroupAsync(41).then(() => null, (e) => e);
  assert.ok(err instanceof NetlinkError, `expected a NetlinkError, got ${err}`);
  assert.equal(err.kind, "notfound");
  let syncErr: unknown;
  try {
    nl.deleteGroup(41);
  } catch (e) {
    syncErr = e;
  }
  assert.ok(syncErr instanceof NetlinkError);
  assert.equal(syncErr.kind, err.kind);
  assert.equal(syncErr.message, err.message);
  await assert.rejects(nl.deleteGroupAsync(0), RangeError);
});

Deno.test("a socket refuses other use while deleteGroupAsync() is in flight", opts, async () => {
  await using ns = await tempNetns();
  const nl = Netlink.open(ns.path);
  try {
    const a = ppName("a");
    nl.addVeth({ name: a, peerName: ppName("b"), group: 51, peerGroup: 51 });
    const pending = nl.deleteGroupAsync(51);
    assert.throws(() => nl.listLinks(), /busy with an asynchronous request/);
    nl.close(); // deferred until the delete settled
    await pending;
    assert.throws(() => nl.listLinks(), /socket is closed/);
  } finally {
    nl.close();
  }
  using check = Netlink.open(ns.path);
  assert.deepEqual(names(check), ["lo"]);
});

Deno.test(
  "concurrent deleteGroupAsync() calls on separate sockets all complete",
  opts,
  async () => {
    await using ns = await tempNetns();
    const socks = Array.from({ length: 4 }, () => Netlink.open(ns.path));
    try {
      socks.forEach((nl, i) =>
        nl.addVeth({
          name: ppName(`x${i}`),
          peerName: ppName(`y${i}`),
          group: 60 + i,
          peerGroup: 60 + i,
        })
      );
      await Promise.all(socks.map((nl, i) => nl.deleteGroupAsync(60 + i)));
      assert.deepEqual(names(socks[0]), ["lo"]);
    } finally {
      for (const nl of socks) nl.close();
    }
  },
);
