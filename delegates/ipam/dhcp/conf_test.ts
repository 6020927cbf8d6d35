import assert from "node:assert/strict";
import { CniError } from "../../../conf/errors.ts";
import {
  clientId,
  DEFAULT_DAEMON_SOCKET,
  keeperSockets,
  parseDhcpConf,
  parseOptionName,
  requestOptions,
} from "./conf.ts";

const net = (ipam: Record<string, unknown>) => ({
  cniVersion: "1.0.0",
  name: "lan",
  type: "macvlan",
  ipam: { type: "dhcp", ...ipam },
});

function code7(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof CniError && e.code === 7 && re.test(e.message));
}

Deno.test("parseDhcpConf() defaults: podplex's keeper socket, router + subnet mask requested", () => {
  const c = parseDhcpConf(net({}));
  assert.equal(c.socketPath, undefined);
  assert.deepEqual(keeperSockets(c), [DEFAULT_DAEMON_SOCKET]);
  // A daemon on a socket of its own keeps its leases beside it (issue 20).
  assert.deepEqual(keeperSockets(c, "/tmp/ppx/podplex.sock"), [
    "/tmp/ppx/dhcp.sock",
    DEFAULT_DAEMON_SOCKET,
  ]);
  assert.deepEqual(keeperSockets(c, "/run/podplex/podplex.sock"), [DEFAULT_DAEMON_SOCKET]);
  assert.deepEqual(c.request, [3, 1]);
  assert.deepEqual(c.provide, []);
  assert.equal(c.priority, 0);
  const given = parseDhcpConf(net({ daemonSocketPath: "/tmp/x.sock" }));
  assert.deepEqual(keeperSockets(given, "/tmp/ppx/podplex.sock"), ["/tmp/x.sock"]);
});

Deno.test("parseDhcpConf() reads request with skipDefault and option names or numbers", () => {
  const c = parseDhcpConf(net({
    request: [{ option: "6" }, { option: "routers" }, { option: "121" }],
  }));
  assert.deepEqual(c.request, [6, 3, 121, 1], "defaults after, without duplicates");
  const s = parseDhcpConf(net({ request: [{ skipDefault: true }, { option: "subnet-mask" }] }));
  assert.deepEqual(s.request, [1]);
});

Deno.test("parseDhcpConf() refuses unknown option names, long values and bad types (code 7)", () => {
  code7(() => parseDhcpConf(net({ request: [{ option: "dns" }] })), /ipam\.request\[0\]\.option/);
  code7(() => parseDhcpConf(net({ provide: [{ option: "256", value: "x" }] })), /"256"/);
  code7(
    () => parseDhcpConf(net({ provide: [{ option: "host-name", value: "x".repeat(256) }] })),
    /ipam\.provide\[0\]\.value/,
  );
  code7(() => parseDhcpConf(net({ request: [{ skipDefault: "yes" }] })), /skipDefault/);
  code7(() => parseDhcpConf(net({ priority: "high" })), /ipam\.priority/);
  code7(() => parseDhcpConf({ name: "lan" }), /ipam/);
});

Deno.test("requestOptions() sends provide values, fromArg winning, and the request list", () => {
  const c = parseDhcpConf(net({
    provide: [
      { option: "host-name", value: "fixed", fromArg: "K8S_POD_NAME" },
      { option: "user-class", value: "podplex" },
      { option: "60", fromArg: "MISSING" },
    ],
  }));
  const o = requestOptions(c, new Map([["K8S_POD_NAME", "web-1"]]));
  const dec = new TextDecoder();
  assert.equal(dec.decode(o.get(12)), "web-1");
  assert.equal(dec.decode(o.get(77)), "podplex");
  assert.equal(o.has(60), false);
  assert.deepEqual([...o.get(55)!], [3, 1]);
  const none = parseDhcpConf(net({ request: [{ skipDefault: true }] }));
  assert.equal(requestOptions(none, new Map()).has(55), false);
});

Deno.test("parseOptionName() knows the reference's names", () => {
  assert.equal(parseOptionName("dhcp-client-identifier", "x"), 61);
  assert.equal(parseOptionName("vendor-class-identifier", "x"), 60);
  assert.equal(parseOptionName("0", "x"), 0);
  assert.equal(parseOptionName("255", "x"), 255);
});

Deno.test("clientId() is containerID/netName/ifName cut to 254 bytes (the reference's)", () => {
  assert.equal(clientId("abc", "lan", "net1"), "abc/lan/net1");
  assert.equal(clientId("a".repeat(300), "lan", "net1").length, 254);
});
