import assert from "node:assert/strict";
import { catchError, throwsKind } from "./_testing.ts";
import { isRoot, ppName, run, tempNetns } from "../tests/testutils.ts";
import { Netlink, NetlinkError, NetNs, netnsPath, withNetns } from "./mod.ts";

const opts = { ignore: !isRoot, sanitizeResources: false };

function hostInode(): bigint {
  using cur = NetNs.current();
  return cur.inode();
}

async function netnsNames(): Promise<string[]> {
  return (await run("ip", "netns", "list")).split("\n").map((l) => l.split(" ")[0]);
}

Deno.test("netnsPath() maps a bare name to /run/netns and keeps paths", () => {
  assert.deepEqual(netnsPath("pod1"), "/run/netns/pod1");
  assert.deepEqual(netnsPath("/proc/1/ns/net"), "/proc/1/ns/net");
});

Deno.test("NetNs.open() of a missing netns throws kind notfound", opts, () => {
  const err = throwsKind(() => NetNs.open("/run/netns/ppmissing0"), "notfound");
  assert.deepEqual(err.code, 2); // ENOENT
  assert.ok(err.message.includes("/run/netns/ppmissing0"), err.message);
});

Deno.test("NetNs.open() gives the same inode as another handle on that netns", opts, async () => {
  await using ns = await tempNetns();
  using a = NetNs.open(ns.path);
  using b = NetNs.open(ns.name);
  assert.deepEqual(a.inode(), b.inode());
  assert.notEqual(a.inode(), hostInode());
});

Deno.test("NetNs.close() is idempotent and sets fd to -1", opts, async () => {
  await using ns = await tempNetns();
  const h = NetNs.open(ns.path);
  assert.ok(h.fd >= 0);
  h.close();
  h.close();
  assert.deepEqual(h.fd, -1);
});

Deno.test(
  "NetNs.create() makes a netns that ip netns sees and remove() deletes it",
  opts,
  async () => {
    const name = ppName("mk");
    try {
      using created = NetNs.create(name);
      assert.deepEqual(created.path, `/run/netns/${name}`);
      assert.notEqual(created.inode(), hostInode());
      assert.ok((await netnsNames()).includes(name));
      // The netns is usable by other tools and is really new (only lo inside).
      const links = JSON.parse(await run("ip", "-j", "-n", name, "link", "show"));
      assert.deepEqual(links.map((l: { ifname: string }) => l.ifname), ["lo"]);
    } finally {
      NetNs.remove(name);
    }
    assert.ok(!(await netnsNames()).includes(name));
  },
);

Deno.test("NetNs.create() leaves the calling thread in its original netns", opts, () => {
  const name = ppName("mk");
  const before = hostInode();
  try {
    NetNs.create(name).close();
    assert.deepEqual(hostInode(), before);
  } finally {
    NetNs.remove(name);
  }
});

Deno.test("NetNs.create() of an existing name throws kind exists", opts, async () => {
  await using ns = await tempNetns();
  throwsKind(() => NetNs.create(ns.name), "exists");
  // The existing netns was not harmed.
  await run("ip", "-n", ns.name, "link", "show", "lo");
});

Deno.test("NetNs.remove() of a missing name is not an error", opts, () => {
  NetNs.remove(ppName("gone"));
});

Deno.test("withNetns() runs fn inside the netns and returns its value", opts, async () => {
  await using ns = await tempNetns();
  using target = NetNs.open(ns.path);
  const before = hostInode();
  const inner = withNetns(target, hostInode);
  assert.deepEqual(inner, target.inode());
  assert.deepEqual(hostInode(), before);
});

Deno.test("withNetns() switches back when fn throws", opts, async () => {
  await using ns = await tempNetns();
  const before = hostInode();
  const err = catchError(() =>
    withNetns(ns.path, () => {
      throw new Error("boom");
    }), Error);
  assert.equal(err.message, "boom");
  assert.deepEqual(hostInode(), before);
});

Deno.test("withNetns() refuses a Promise-returning fn and is back home", opts, async () => {
  await using ns = await tempNetns();
  const before = hostInode();
  const err = catchError(() => withNetns(ns.path, () => Promise.resolve(1)), TypeError);
  assert.ok(err.message.includes("synchronous"), err.message);
  assert.deepEqual(hostInode(), before);
});

Deno.test("withNetns() nests and unwinds to each previous netns", opts, async () => {
  await using a = await tempNetns();
  await using b = await tempNetns();
  using na = NetNs.open(a.path);
  using nb = NetNs.open(b.path);
  const before = hostInode();
  const seen = withNetns(na, () => {
    const inB = withNetns(nb, hostInode);
    return [hostInode(), inB];
  });
  assert.deepEqual(seen, [na.inode(), nb.inode()]);
  assert.deepEqual(hostInode(), before);
});

Deno.test("withNetns() of a missing netns throws notfound without moving", opts, () => {
  const before = hostInode();
  throwsKind(() => withNetns("ppnope0", () => 1), "notfound");
  assert.deepEqual(hostInode(), before);
});

Deno.test("Netlink.open(ns) binds the socket to that netns for later use", opts, async () => {
  await using ns = await tempNetns();
  using nl = Netlink.open(ns.path);
  const name = ppName("br");
  nl.addBridge({ name });
  // Created in the netns although the thread is home again.
  const inNs = JSON.parse(await run("ip", "-j", "-n", ns.name, "link", "show", "dev", name));
  assert.deepEqual(inNs[0].ifname, name);
  assert.deepEqual(
    await new Deno.Command("ip", { args: ["link", "show", name] }).output()
      .then((o) => o.success),
    false,
  );
});

Deno.test("NetNs.open() refuses a file that is not a network namespace (kind notnetns)", async () => {
  const file = await Deno.makeTempFile({ prefix: "ppnotns" });
  try {
    for (const path of [file, "/proc/self/ns/mnt", "/proc/self/ns/uts"]) {
      try {
        NetNs.open(path).close();
        throw new Error(`${path} opened as a netns`);
      } catch (e) {
        if (!(e instanceof NetlinkError) || e.kind !== "notnetns") throw e;
      }
    }
    NetNs.open("/proc/self/ns/net").close();
  } finally {
    await Deno.remove(file);
  }
});
