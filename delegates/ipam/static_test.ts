import assert from "node:assert/strict";
import { CniError } from "../../conf/errors.ts";
import { ctxFor } from "./host_local/_testutil.ts";
import { parseStaticConf, staticIpam } from "./static.ts";

function raw(ipam: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { cniVersion: "1.0.0", name: "ppnet", ...extra, ipam: { type: "static", ...ipam } };
}

const addresses = [
  { address: "10.10.0.1/24", gateway: "10.10.0.254" },
  { address: "3ffe:ffff:0:01ff::1/64", gateway: "3ffe:ffff:0::1" },
];

Deno.test("static add() returns the configured addresses, routes and dns", async () => {
  const r = raw({
    addresses,
    routes: [{ dst: "0.0.0.0/0" }, { dst: "3ffe:ffff:0:01ff::1/64" }],
    dns: { nameservers: ["8.8.8.8"], domain: "example.com", search: ["example.com"] },
  });
  const result = await staticIpam.add(staticIpam.parseConf(r), ctxFor(r));
  assert.deepEqual(result, {
    cniVersion: "1.1.0",
    ips: [
      { address: "10.10.0.1/24", gateway: "10.10.0.254" },
      { address: "3ffe:ffff:0:1ff::1/64", gateway: "3ffe:ffff::1" },
    ],
    routes: [{ dst: "0.0.0.0/0" }, { dst: "3ffe:ffff:0:1ff::1/64" }],
    dns: { nameservers: ["8.8.8.8"], domain: "example.com", search: ["example.com"] },
  });
});

Deno.test("static add() appends CNI_ARGS IP and applies GATEWAY by subnet", async () => {
  const r = raw({ addresses: [{ address: "10.10.0.1/24" }] });
  const ctx = ctxFor(r, "c", "eth0", {
    IP: "10.20.0.5/16, fd00::5/64",
    GATEWAY: "10.20.0.1,fd00::1",
  });
  const result = await staticIpam.add(parseStaticConf(r), ctx);
  assert.deepEqual(result.ips, [
    { address: "10.10.0.1/24" },
    { address: "10.20.0.5/16", gateway: "10.20.0.1" },
    { address: "fd00::5/64", gateway: "fd00::1" },
  ]);
});

Deno.test("static runtimeConfig.ips and args.cni.ips replace every other address", async () => {
  const r = raw({ addresses }, {
    args: { cni: { ips: ["10.30.0.1/24"] } },
    runtimeConfig: { ips: ["10.40.0.1/24"] },
  });
  const ctx = ctxFor(r, "c", "eth0", { IP: "10.20.0.5/16" });
  assert.deepEqual((await staticIpam.add(parseStaticConf(r), ctx)).ips, [
    { address: "10.40.0.1/24" },
  ]);
  const argsOnly = raw({ addresses }, { args: { cni: { ips: ["10.30.0.1/24"] } } });
  assert.deepEqual((await staticIpam.add(parseStaticConf(argsOnly), ctxFor(argsOnly))).ips, [
    { address: "10.30.0.1/24" },
  ]);
});

Deno.test("static parseConf() rejects addresses that are not CIDRs, naming the field", () => {
  const bad = (r: Record<string, unknown>, part: string) =>
    assert.throws(
      () => parseStaticConf(r),
      (e: unknown) => e instanceof CniError && e.code === 7 && e.message.includes(part),
    );
  bad(raw({ addresses: [{ address: "10.10.0.1" }] }), "ipam.addresses[0].address");
  bad(raw({ addresses: [{}] }), "ipam.addresses[0].address");
  bad(raw({ addresses: [{ address: "10.10.0.1/24", gateway: "x" }] }), "ipam.addresses[0].gateway");
  bad(raw({}, { runtimeConfig: { ips: ["10.1.1.1"] } }), "runtimeConfig.ips[0]");
  bad({ name: "n" }, "ipam");
  bad(
    raw({ addresses: [{ address: "10.1.0.1/24" }, { address: "10.2.0.1/24" }] }, {
      cniVersion: "0.2.0",
    }),
    "0.2.0",
  );
});

Deno.test("static add() rejects a malformed CNI_ARGS IP with code 7", async () => {
  const r = raw({});
  await assert.rejects(
    staticIpam.add(parseStaticConf(r), ctxFor(r, "c", "eth0", { IP: "10.0.0.1" })),
    (e: unknown) => e instanceof CniError && e.code === 7 && e.message.includes("CNI_ARGS IP"),
  );
});

Deno.test("static check() needs prevResult and compares gateways of found addresses", async () => {
  const r = raw({ addresses });
  const conf = parseStaticConf(r);
  await assert.rejects(staticIpam.check(conf, ctxFor(r)), /prevResult/);
  const good = { cniVersion: "1.1.0", ips: (await staticIpam.add(conf, ctxFor(r))).ips };
  await staticIpam.check(conf, ctxFor(r, "c", "eth0", {}, good));
  const wrong = {
    cniVersion: "1.1.0",
    ips: [{ address: "10.10.0.1/24", gateway: "10.10.0.9" }],
  };
  await assert.rejects(staticIpam.check(conf, ctxFor(r, "c", "eth0", {}, wrong)), /10\.10\.0\.9/);
});
