import assert from "node:assert/strict";
import { isRoot, ppName, tempNetns } from "../tests/testutils.ts";
import { throwsKind } from "./_testing.ts";
import { Netlink, NetNs, withNetns } from "./mod.ts";

const opts = { ignore: !isRoot };
const ROUNDS = 1000;

/** Open descriptors of this process, and how many of them are sockets. */
function fdCounts(): { fds: number; sockets: number } {
  let fds = 0;
  let sockets = 0;
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    fds++;
    try {
      if (Deno.readLinkSync(`/proc/self/fd/${e.name}`).startsWith("socket:")) sockets++;
    } catch {
      // the descriptor readDirSync itself used is gone by now
    }
  }
  return { fds, sockets };
}

const mountCount = () => Deno.readTextFileSync("/proc/self/mountinfo").split("\n").length;

Deno.test(
  `${ROUNDS} Netlink sockets and netns windows leave no descriptor behind`,
  opts,
  async () => {
    await using ns = await tempNetns();
    using target = NetNs.open(ns.path);
    const before = fdCounts();
    const mountsBefore = mountCount();
    for (let i = 0; i < ROUNDS; i++) {
      const nl = Netlink.open(i % 2 ? target : ns.path);
      assert.equal(nl.getLink("lo")?.index, 1);
      if (i % 100 === 0) throwsKind(() => nl.deleteLink("ppmissing"), "notfound");
      nl.close();
      nl.close();
    }
    for (let i = 0; i < ROUNDS; i++) {
      withNetns(i % 2 ? target : ns.path, () => NetNs.current().close());
    }
    for (let i = 0; i < 100; i++) {
      assert.throws(() =>
        withNetns(target, () => {
          throw new Error("inside");
        })
      );
    }
    assert.deepEqual(fdCounts(), before);
    assert.equal(mountCount(), mountsBefore);
  },
);

Deno.test("creating and removing 100 netns leaves no mount or file behind", opts, () => {
  const mountsBefore = mountCount();
  const fdsBefore = fdCounts();
  const names: string[] = [];
  try {
    for (let i = 0; i < 100; i++) {
      const name = ppName("lk");
      names.push(name);
      NetNs.create(name).close();
      NetNs.remove(name);
    }
  } finally {
    for (const n of names) NetNs.remove(n);
  }
  assert.equal(mountCount(), mountsBefore);
  assert.deepEqual(fdCounts(), fdsBefore);
  const left = [...Deno.readDirSync("/run/netns")].filter((e) => names.includes(e.name));
  assert.deepEqual(left, []);
});
