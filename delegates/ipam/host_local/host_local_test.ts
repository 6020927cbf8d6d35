import assert from "node:assert/strict";
import { CniError } from "../../../conf/errors.ts";
import { formatIp } from "../../../conf/ip.ts";
import { tempDir } from "../../../tests/testutils.ts";
import { ctxFor, hostLocalRaw } from "./_testutil.ts";
import {
  hostLocal,
  hostLocalAdd,
  hostLocalCheck,
  hostLocalDel,
  hostLocalGc,
  hostLocalStatus,
  parseHostLocalConf,
  parseResolvConf,
  type StoreFactory,
} from "./host_local.ts";
import { MemoryStore } from "./store.ts";

function memory(): { store: MemoryStore; open: StoreFactory } {
  const store = new MemoryStore();
  return { store, open: () => Promise.resolve(store) };
}

function code7(fn: () => unknown, part: string): void {
  assert.throws(
    fn,
    (e: unknown) => e instanceof CniError && e.code === 7 && e.message.includes(part),
  );
}

const leased = (s: MemoryStore) => [...s.leases.keys()].sort();

Deno.test("parseHostLocalConf() puts ipRanges first, then the legacy range, then ranges", () => {
  const conf = parseHostLocalConf(hostLocalRaw(
    { subnet: "10.1.2.0/24", ranges: [[{ subnet: "11.1.2.0/24" }]] },
    { runtimeConfig: { ipRanges: [[{ subnet: "12.1.3.0/24" }]] } },
  ));
  assert.deepEqual(conf.ranges.map((s) => formatIp(s[0].subnet.network)), [
    "12.1.3.0",
    "10.1.2.0",
    "11.1.2.0",
  ]);
  assert.equal(conf.dataDir, "");
  assert.equal(conf.name, "ppnet");
});

Deno.test("parseHostLocalConf() reads capability keys case-insensitively (containerd)", () => {
  const conf = parseHostLocalConf(hostLocalRaw({}, {
    runtimeConfig: { IPRanges: [[{ Subnet: "12.1.3.0/24", RangeStart: "12.1.3.9" }]] },
  }));
  assert.equal(formatIp(conf.ranges[0][0].rangeStart), "12.1.3.9");
});

Deno.test("parseHostLocalConf() ignores legacy range fields without a subnet", () => {
  const conf = parseHostLocalConf(hostLocalRaw({
    rangeStart: "10.1.2.9",
    ranges: [[{ subnet: "11.1.2.0/24" }]],
  }));
  assert.equal(conf.ranges.length, 1);
});

Deno.test("parseHostLocalConf() rejects a missing ipam, no ranges and overlapping sets", () => {
  code7(() => parseHostLocalConf({ name: "n" }), "ipam");
  code7(() => parseHostLocalConf(hostLocalRaw({})), "No IP ranges");
  code7(
    () =>
      parseHostLocalConf(
        hostLocalRaw({ subnet: "10.1.0.0/16", ranges: [[{ subnet: "10.1.2.0/24" }]] }),
      ),
    "range set 0 overlaps with range set 1",
  );
  code7(
    () => parseHostLocalConf(hostLocalRaw({ ranges: [{ subnet: "10.1.0.0/16" }] })),
    "ipam.ranges[0]",
  );
});

Deno.test("parseHostLocalConf() rejects two addresses of a family below spec 0.3.0", () => {
  const ipam = { ranges: [[{ subnet: "10.1.0.0/24" }], [{ subnet: "10.2.0.0/24" }]] };
  code7(() => parseHostLocalConf(hostLocalRaw(ipam, { cniVersion: "0.2.0" })), "0.2.0");
  assert.equal(parseHostLocalConf(hostLocalRaw(ipam, { cniVersion: "0.3.1" })).ranges.length, 2);
});

Deno.test("parseHostLocalConf() reads requested IPs from args.cni.ips and runtimeConfig.ips", () => {
  const conf = parseHostLocalConf(hostLocalRaw({ subnet: "10.1.2.0/24" }, {
    args: { cni: { ips: ["10.1.2.7/24"] } },
    runtimeConfig: { ips: ["10.1.2.8"] },
  }));
  assert.deepEqual(conf.requestedIps.map(formatIp), ["10.1.2.7", "10.1.2.8"]);
  code7(
    () =>
      parseHostLocalConf(
        hostLocalRaw({ subnet: "10.1.2.0/24" }, { runtimeConfig: { ips: ["x"] } }),
      ),
    `"x"`,
  );
});

Deno.test("parseHostLocalConf() canonicalises routes and rejects bad ones", () => {
  const conf = parseHostLocalConf(hostLocalRaw({
    subnet: "10.1.2.0/24",
    routes: [{ dst: "0:0::0/0", gw: "FD00::1" }, { dst: "10.0.0.0/8" }],
  }));
  assert.deepEqual(conf.routes, [{ dst: "::/0", gw: "fd00::1" }, { dst: "10.0.0.0/8" }]);
  code7(
    () => parseHostLocalConf(hostLocalRaw({ subnet: "10.1.2.0/24", routes: [{ gw: "10.1.2.1" }] })),
    "dst",
  );
});

Deno.test("hostLocal add() gives one address per set with routes, and del() frees them", async () => {
  const { store, open } = memory();
  const raw = hostLocalRaw({
    ranges: [[{ subnet: "10.1.2.0/24" }], [{ subnet: "fd00::/64" }]],
    routes: [{ dst: "0.0.0.0/0" }],
  });
  const conf = hostLocal.parseConf(raw);
  const result = await hostLocalAdd(conf, ctxFor(raw), open);
  assert.deepEqual(result, {
    cniVersion: "1.1.0",
    ips: [
      { address: "10.1.2.2/24", gateway: "10.1.2.1" },
      { address: "fd00::2/64", gateway: "fd00::1" },
    ],
    routes: [{ dst: "0.0.0.0/0" }],
  });
  await hostLocalCheck(conf, ctxFor(raw), open);
  await hostLocalDel(conf, ctxFor(raw), open);
  assert.deepEqual(leased(store), []);
  await hostLocalDel(conf, ctxFor(raw), open); // DEL of nothing is success
  await assert.rejects(hostLocalCheck(conf, ctxFor(raw), open), (e: unknown) => {
    return e instanceof CniError && e.code === 3;
  });
});

Deno.test("hostLocal add() honours CNI_ARGS IP and rolls back when a set fails", async () => {
  const { store, open } = memory();
  const raw = hostLocalRaw({ ranges: [[{ subnet: "10.1.2.0/24" }], [{ subnet: "10.9.0.0/30" }]] });
  const conf = parseHostLocalConf(raw);
  const r = await hostLocalAdd(conf, ctxFor(raw, "a", "eth0", { IP: "10.1.2.50" }), open);
  assert.equal(r.ips![0].address, "10.1.2.50/24");
  // The second set has a single usable address: the next ADD exhausts it.
  await assert.rejects(hostLocalAdd(conf, ctxFor(raw, "b"), open), (e: unknown) => {
    return e instanceof CniError && e.code === 103 && e.message.includes("range set 1");
  });
  assert.deepEqual(leased(store), ["10.1.2.50", "10.9.0.2"]);
});

Deno.test("hostLocal add() fails on a requested IP no set holds, reserving nothing", async () => {
  const { store, open } = memory();
  const raw = hostLocalRaw({ subnet: "10.1.2.0/24" }, { runtimeConfig: { ips: ["10.7.0.1"] } });
  await assert.rejects(
    hostLocalAdd(parseHostLocalConf(raw), ctxFor(raw), open),
    (e: unknown) => e instanceof CniError && e.code === 7 && e.message.includes("10.7.0.1"),
  );
  assert.deepEqual(leased(store), []);
});

Deno.test("hostLocal add() reads dns from resolvConf", async () => {
  await using dir = await tempDir("ppresolv");
  const path = `${dir.path}/resolv.conf`;
  await Deno.writeTextFile(
    path,
    "# c\n; c\nnameserver 10.0.0.53\nnameserver fd00::53\ndomain example.com\n" +
      "search a.example b.example\noptions ndots:2 rotate\nbogus\n",
  );
  assert.deepEqual(await parseResolvConf(path), {
    nameservers: ["10.0.0.53", "fd00::53"],
    domain: "example.com",
    search: ["a.example", "b.example"],
    options: ["ndots:2", "rotate"],
  });
  const { open } = memory();
  const raw = hostLocalRaw({ subnet: "10.1.2.0/24", resolvConf: path });
  const r = await hostLocalAdd(parseHostLocalConf(raw), ctxFor(raw), open);
  assert.deepEqual(r.dns?.nameservers, ["10.0.0.53", "fd00::53"]);
  const missing = hostLocalRaw({ subnet: "10.1.2.0/24", resolvConf: `${dir.path}/nope` });
  await assert.rejects(hostLocalAdd(parseHostLocalConf(missing), ctxFor(missing), open), /nope/);
});

Deno.test("hostLocal del() drops legacy id-only leases of the container too", async () => {
  const { store, open } = memory();
  const raw = hostLocalRaw({ ranges: [[{ subnet: "10.1.2.0/24" }], [{ subnet: "fd00::/64" }]] });
  const conf = parseHostLocalConf(raw);
  await hostLocalAdd(conf, ctxFor(raw, "old"), open);
  // Rewrite the leases as a host-local older than ifname support would have.
  for (const l of store.leases.values()) delete l.ifname;
  await hostLocalDel(conf, ctxFor(raw, "old"), open);
  assert.deepEqual(leased(store), []);
});

Deno.test("hostLocal gc() releases every lease not in cni.dev/valid-attachments", async () => {
  const { store, open } = memory();
  const raw = hostLocalRaw({ subnet: "10.1.2.0/24" });
  const conf = parseHostLocalConf(raw);
  for (const [id, ifn] of [["a", "eth0"], ["a", "eth1"], ["b", "eth0"], ["c", "eth0"]]) {
    await hostLocalAdd(conf, ctxFor(raw, id, ifn), open);
  }
  store.leases.get("10.1.2.5")!.ifname = undefined; // c's lease in legacy form
  const gcRaw = {
    ...raw,
    "cni.dev/valid-attachments": [{ containerID: "a", ifname: "eth0" }, {
      containerID: "c",
      ifname: "eth9",
    }],
  };
  const freed = await hostLocalGc(conf, ctxFor(gcRaw), open);
  assert.deepEqual(freed.map(formatIp).sort(), ["10.1.2.3", "10.1.2.4"]);
  assert.deepEqual(leased(store), ["10.1.2.2", "10.1.2.5"]);
  // The older key libcni also sends.
  const old = { ...raw, "cni.dev/attachments": [] };
  await hostLocalGc(conf, ctxFor(old), open);
  assert.deepEqual(leased(store), []);
  await assert.rejects(hostLocalGc(conf, ctxFor(raw), open), /valid-attachments/);
});

Deno.test("hostLocal with the disk store shares the reference's file format", async () => {
  await using dir = await tempDir("pphl");
  const raw = hostLocalRaw({ subnet: "10.1.2.0/24", dataDir: dir.path });
  const conf = parseHostLocalConf(raw);
  await hostLocal.add(conf, ctxFor(raw, "  ctr1 ", "eth0"));
  const net = `${dir.path}/ppnet`;
  assert.equal(await Deno.readTextFile(`${net}/10.1.2.2`), "ctr1\r\neth0");
  assert.equal((await Deno.stat(`${net}/10.1.2.2`)).mode! & 0o777, 0o600);
  assert.equal(await Deno.readTextFile(`${net}/last_reserved_ip.0`), "10.1.2.2");
  await hostLocal.check(conf, ctxFor(raw, "ctr1", "eth0"));
  await hostLocal.status!(conf, ctxFor(raw));
  await hostLocal.gc!(conf, ctxFor({ ...raw, "cni.dev/valid-attachments": [] }));
  // The lease index is podplex's own (not an address: the reference passes it by).
  assert.deepEqual([...Deno.readDirSync(net)].map((e) => e.name).sort(), [
    ".podplex-index",
    "last_reserved_ip.0",
    "lock",
  ]);
});

Deno.test("hostLocal status() fails with code 50 when the data dir cannot be written", async () => {
  await using dir = await tempDir("ppst");
  await Deno.writeTextFile(`${dir.path}/file`, "");
  const raw = hostLocalRaw({ subnet: "10.1.2.0/24", dataDir: `${dir.path}/file` });
  await assert.rejects(hostLocalStatus(parseHostLocalConf(raw)), (e: unknown) => {
    return e instanceof CniError && e.code === 50;
  });
});
