import assert from "node:assert/strict";
import { isRoot, ppName, run, tempNetns } from "../tests/testutils.ts";
import { throwsKind } from "./_testing.ts";
import { Netlink, NetNs, readSysctl, sysctlPath, writeSysctl } from "./mod.ts";

const opts = { ignore: !isRoot };

Deno.test("sysctlPath() accepts dotted and slash keys", () => {
  assert.equal(sysctlPath("net.ipv4.ip_forward"), "/proc/sys/net/ipv4/ip_forward");
  assert.equal(sysctlPath("net/ipv4/ip_forward"), "/proc/sys/net/ipv4/ip_forward");
  assert.equal(sysctlPath("/proc/sys/net/ipv4/ip_forward"), "/proc/sys/net/ipv4/ip_forward");
  assert.equal(
    sysctlPath("net/ipv4/conf/eth0.100/forwarding"),
    "/proc/sys/net/ipv4/conf/eth0.100/forwarding",
  );
});

Deno.test("writeSysctl() in a netns changes it there and not on the host", opts, async () => {
  await using ns = await tempNetns();
  const host = readSysctl("net/ipv4/ip_forward");
  const other = host === "1" ? "0" : "1";
  writeSysctl("net.ipv4.ip_forward", other, ns.path);
  assert.equal(readSysctl("net.ipv4.ip_forward", ns.path), other);
  assert.equal(
    (await run("ip", "netns", "exec", ns.name, "cat", "/proc/sys/net/ipv4/ip_forward")).trim(),
    other,
  );
  assert.equal(readSysctl("net/ipv4/ip_forward"), host);
});

Deno.test("readSysctl() and writeSysctl() reach per-link keys of a netns", opts, async () => {
  await using ns = await tempNetns();
  using target = NetNs.open(ns.path);
  using nl = Netlink.open(target);
  const br = ppName("br");
  nl.addBridge({ name: br });
  const key = `net/ipv6/conf/${br}/accept_ra`;
  writeSysctl(key, "0", target);
  assert.equal(readSysctl(key, target), "0");
  writeSysctl(`net.ipv4.conf.${br}.arp_notify`, "1", ns.name);
  assert.equal(readSysctl(`net/ipv4/conf/${br}/arp_notify`, ns.name), "1");
  // The host has no such link: the key does not exist there.
  throwsKind(() => readSysctl(key), "notfound");
});

Deno.test("readSysctl() of a missing key throws kind notfound", opts, () => {
  const err = throwsKind(() => readSysctl("net/ipv4/pp_no_such_key"), "notfound");
  assert.ok(err.message.includes("pp_no_such_key"), err.message);
});

Deno.test(
  "writeSysctl() of a value the kernel refuses throws with errno EINVAL",
  opts,
  async () => {
    await using ns = await tempNetns();
    const err = throwsKind(() => writeSysctl("net/ipv4/ip_forward", "banana", ns.path), "other");
    assert.equal(err.errno, 22);
  },
);
