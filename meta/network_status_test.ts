import assert from "node:assert/strict";
import { buildNetworkStatus } from "./network_status.ts";
import type { AttachmentState } from "./state.ts";

function att(over: Partial<AttachmentState>): AttachmentState {
  return {
    network: "net",
    ifname: "net1",
    isCluster: false,
    isDefault: false,
    confText: "{}",
    ...over,
  };
}

const BRIDGE_RESULT = {
  cniVersion: "1.1.0",
  interfaces: [
    { name: "cni0", mac: "aa:aa:aa:aa:aa:01" },
    { name: "veth1234", mac: "aa:aa:aa:aa:aa:02" },
    { name: "eth0", mac: "0a:58:0a:f4:02:06", mtu: 1450, sandbox: "/run/netns/x" },
  ],
  ips: [
    { address: "10.244.2.6/24", gateway: "10.244.2.1", interface: 2 },
    { address: "fd00::6/64", interface: 2 },
  ],
  routes: [{ dst: "0.0.0.0/0", gw: "10.244.2.1" }, { dst: "10.96.0.0/12" }],
  dns: { nameservers: ["10.96.0.10"] },
};

Deno.test("buildNetworkStatus() makes one entry per sandbox interface with bare IPs", () => {
  const status = buildNetworkStatus([
    att({
      network: "kube-system/flannel",
      ifname: "eth0",
      isCluster: true,
      isDefault: true,
      result: BRIDGE_RESULT,
    }),
    att({
      network: "default/macvlan-conf-1",
      ifname: "macvlan1",
      result: {
        cniVersion: "1.1.0",
        interfaces: [{ name: "macvlan1", mac: "4e:6d:7a:4e:14:87", sandbox: "/run/netns/x" }],
        ips: [{ address: "10.10.1.22/16", interface: 0 }],
      },
    }),
  ]);
  assert.deepEqual(status, [
    {
      name: "kube-system/flannel",
      interface: "eth0",
      ips: ["10.244.2.6", "fd00::6"],
      mac: "0a:58:0a:f4:02:06",
      mtu: 1450,
      default: true,
      dns: { nameservers: ["10.96.0.10"] },
      gateway: ["10.244.2.1"],
    },
    {
      name: "default/macvlan-conf-1",
      interface: "macvlan1",
      ips: ["10.10.1.22"],
      mac: "4e:6d:7a:4e:14:87",
    },
  ]);
});

Deno.test("buildNetworkStatus() marks as default the interface whose IP has a gateway", () => {
  const [a, b] = buildNetworkStatus([att({
    isDefault: true,
    result: {
      interfaces: [
        { name: "net1", sandbox: "/x" },
        { name: "net2", sandbox: "/x" },
      ],
      ips: [{ address: "10.0.0.2/24", interface: 0 }, {
        address: "10.1.0.2/24",
        gateway: "10.1.0.1",
        interface: 1,
      }],
    },
  })]);
  assert.equal(a.default, undefined);
  assert.equal(b.default, true);
  assert.deepEqual(a.ips, ["10.0.0.2"]);
  assert.deepEqual(b.ips, ["10.1.0.2"]);
});

Deno.test("buildNetworkStatus() gives IPs without an interface index to the last sandbox interface", () => {
  const status = buildNetworkStatus([att({
    result: {
      interfaces: [{ name: "a", sandbox: "/x" }, { name: "host" }, { name: "b", sandbox: "/x" }],
      ips: [{ address: "10.0.0.2/24" }],
    },
  })]);
  assert.deepEqual(status.map((s) => [s.interface, s.ips]), [["a", undefined], ["b", [
    "10.0.0.2",
  ]]]);
});

Deno.test("buildNetworkStatus() reports an IPAM-style result under the attachment's ifname", () => {
  const status = buildNetworkStatus([att({
    network: "ns/x",
    ifname: "net3",
    isDefault: true,
    result: { ips: [{ address: "10.0.0.9/24", gateway: "10.0.0.1" }] },
  })]);
  assert.deepEqual(status, [{ name: "ns/x", interface: "net3", ips: ["10.0.0.9"], default: true }]);
});

Deno.test("buildNetworkStatus() skips host-side interfaces", () => {
  const status = buildNetworkStatus([att({ result: BRIDGE_RESULT })]);
  assert.deepEqual(status.map((s) => s.interface), ["eth0"]);
  assert.equal(status[0].default, undefined);
});
