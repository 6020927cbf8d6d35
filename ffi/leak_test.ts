import assert from "node:assert/strict";
import { isRoot, ppName, tempNetns } from "../tests/testutils.ts";
import { throwsKind } from "./_testing.ts";
import { Netlink, NetNs, withNetns } from "./mod.ts";

const opts = { ignore: !isRoot };
const ROUNDS = 1000;

/**
 * This process's open sockets and netns descriptors: what ffi/ could leak. (Other
 * descriptors, e.g. pipes of `ip` children of earlier tests, come and go on their own.)
 */
function fdCounts(): { sockets: number; netns: number } {
  let sockets = 0;
  let netns = 0;
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    let target = "";
    try {
      target = Deno.readLinkSync(`/proc/self/fd/${e.name}`);
    } catch {
      continue; // the descriptor readDirSync itself used is gone by now
    }
    if (target.startsWith("socket:")) sockets++;
    if (target.startsWith("net:")) netns++;
  }
  return { sockets, netns };
}

/** Mounts whose mount point mentions one of `names` (other tests may mount meanwhile). */
function mountsOf(names: string[]): string[] {
  return Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
    .filter((l) => names.some((n) => l.includes(`/${n} `)));
}

Deno.test(
  `${ROUNDS} Netlink sockets and netns windows leave no descriptor behind`,
  opts,
  async () => {
    await using ns = await tempNetns();
    using target = NetNs.open(ns.path);
    const before = fdCounts();
    assert.equal(mountsOf([ns.name]).length, 1);
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
    assert.equal(mountsOf([ns.name]).length, 1);
  },
);

Deno.test("creating and removing 100 netns leaves no mount or file behind", opts, () => {
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
  assert.deepEqual(mountsOf(names), []);
  assert.deepEqual(fdCounts(), fdsBefore);
  const left = [...Deno.readDirSync("/run/netns")].filter((e) => names.includes(e.name));
  assert.deepEqual(left, []);
});
