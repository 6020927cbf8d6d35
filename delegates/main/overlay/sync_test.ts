import assert from "node:assert/strict";
import { Netlink } from "../../../ffi/mod.ts";
import { isRoot, run, tempNetns } from "../../../tests/testutils.ts";
import { parseLease, type SubnetLease } from "./network.ts";
import { desiredEntries, expectedState, readOverlay, syncOverlay } from "./sync.ts";
import { ensureVtep, stableMac, type VtepSpec } from "./vtep.ts";

const opts = { ignore: !isRoot };

function lease(subnet: string, node: string, ip: string, mac: string, vni = 1): SubnetLease {
  const [net, len] = subnet.split("/");
  return parseLease({
    key: `/p/subnets/${net}-${len}`,
    value: JSON.stringify({
      PublicIP: ip,
      BackendType: "vxlan",
      BackendData: { VNI: vni, VtepMAC: mac },
      PodplexNode: node,
    }),
    createRevision: 1,
    modRevision: 1,
    version: 1,
    lease: "1",
  })!;
}

/** A node netns with an underlay veth (this kernel has no dummy) and its VTEP. */
async function node() {
  const ns = await tempNetns("fsy");
  await run("ip", "-n", ns.name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1");
  await run("ip", "-n", ns.name, "addr", "add", "10.212.250.10/24", "dev", "eth0");
  await run("ip", "-n", ns.name, "link", "set", "eth0", "up");
  const nl = Netlink.open(ns.path);
  const spec: VtepSpec = {
    name: "podplex.1",
    vni: 1,
    port: 8472,
    underlay: nl.requireLink("eth0"),
    local: "10.212.250.10",
    mac: await stableMac("me", 1),
    address: "10.210.1.0/32",
    mtu: 1450,
  };
  return { ns, nl, spec, vtep: ensureVtep(nl, spec) };
}

Deno.test(
  "sync: the VTEP holds exactly the other nodes' route, neighbour and FDB entries",
  opts,
  async () => {
    const { ns, nl, spec, vtep } = await node();
    await using _ns = ns;
    using _nl = nl;
    const leases = [
      lease("10.210.1.0/24", "me", "10.212.250.10", spec.mac),
      lease("10.210.2.0/24", "b", "10.212.250.11", "02:00:00:00:00:0b"),
      lease("10.210.3.0/24", "c", "10.212.250.12", "02:00:00:00:00:0c"),
      lease("10.210.9.0/24", "x", "10.212.250.19", "02:00:00:00:00:19", 2), // another VNI
    ];
    const want = desiredEntries(leases, 1, { node: "me", ownSubnet: "10.210.1.0/24" });
    assert.deepEqual(want.map((e) => e.subnet), ["10.210.2.0/24", "10.210.3.0/24"]);
    const first = syncOverlay(nl, vtep, want);
    assert.deepEqual(first, { added: ["10.210.2.0/24", "10.210.3.0/24"], removed: [] });
    assert.deepEqual(readOverlay(nl, vtep.index), expectedState(want));
    // What iproute2 sees: L3 mode as flannel programs it.
    const routes = await run("ip", "-n", ns.name, "route", "show", "dev", "podplex.1");
    assert.match(routes, /10\.210\.2\.0\/24 via 10\.210\.2\.0 onlink/);
    const neigh = await run("ip", "-n", ns.name, "neigh", "show", "dev", "podplex.1");
    assert.match(neigh, /10\.210\.3\.0 lladdr 02:00:00:00:00:0c PERMANENT/);
    const fdb = await run("bridge", "-n", ns.name, "fdb", "show", "dev", "podplex.1");
    assert.match(fdb, /02:00:00:00:00:0b dst 10\.212\.250\.11 self permanent/);
    // Again: nothing to do.
    assert.deepEqual(syncOverlay(nl, vtep, want), { added: [], removed: [] });

    // b moved (new MAC and address), c left, d joined; a stray entry and a deleted route.
    await run(
      "ip",
      "-n",
      ns.name,
      "neigh",
      "add",
      "10.210.77.0",
      "lladdr",
      "02:00:00:00:00:77",
      "dev",
      "podplex.1",
    );
    const next = desiredEntries(
      [
        lease("10.210.2.0/24", "b", "10.212.250.21", "02:00:00:00:00:2b"),
        lease("10.210.4.0/24", "d", "10.212.250.14", "02:00:00:00:00:0d"),
      ],
      1,
      { node: "me" },
    );
    const r = syncOverlay(nl, vtep, next);
    // b's route stays (its gateway is its subnet's address); its neighbour and FDB entry change.
    assert.deepEqual(r, { added: ["10.210.4.0/24"], removed: ["10.210.3.0/24"] });
    assert.deepEqual(readOverlay(nl, vtep.index), expectedState(next));
    await run("ip", "-n", ns.name, "route", "del", "10.210.4.0/24", "dev", "podplex.1");
    assert.deepEqual(syncOverlay(nl, vtep, next), { added: ["10.210.4.0/24"], removed: [] });
    assert.deepEqual(readOverlay(nl, vtep.index), expectedState(next));
    // Nobody left: nothing left.
    syncOverlay(nl, vtep, []);
    assert.deepEqual(readOverlay(nl, vtep.index), { routes: [], neighbours: [], fdb: [] });
  },
);

Deno.test(
  "vtep: a matching device is kept with its entries; a different VNI is made again",
  opts,
  async () => {
    const { ns, nl, spec, vtep } = await node();
    await using _ns = ns;
    using _nl = nl;
    const want = desiredEntries(
      [lease("10.210.2.0/24", "b", "10.212.250.11", "02:00:00:00:00:0b")],
      1,
      { node: "me" },
    );
    syncOverlay(nl, vtep, want);
    const again = ensureVtep(nl, spec);
    assert.equal(again.index, vtep.index);
    assert.deepEqual(readOverlay(nl, again.index), expectedState(want));
    assert.equal(again.mac, spec.mac);
    assert.equal(again.mtu, 1450);
    assert.deepEqual(nl.listAddrs(again.index, 4).map((a) => a.cidr), ["10.210.1.0/32"]);
    assert.deepEqual(again.vxlan, {
      vni: 1,
      port: 8472,
      local: "10.212.250.10",
      dev: spec.underlay.index,
      learning: false,
    });
    // The node's subnet changed: only the new address stays.
    const moved = ensureVtep(nl, { ...spec, address: "10.210.5.0/32" });
    assert.deepEqual(nl.listAddrs(moved.index, 4).map((a) => a.cidr), ["10.210.5.0/32"]);
    // Another VNI: a new device, no stale entries.
    const other = ensureVtep(nl, { ...spec, vni: 2 });
    assert.notEqual(other.index, vtep.index);
    assert.equal(other.vxlan?.vni, 2);
    assert.deepEqual(readOverlay(nl, other.index), { routes: [], neighbours: [], fdb: [] });
    // The same MAC for the same node and VNI, always; another node's differs.
    assert.equal(await stableMac("me", 1), spec.mac);
    assert.notEqual(await stableMac("me2", 1), spec.mac);
    assert.match(spec.mac, /^[0-9a-f][26ae]:/);
  },
);
