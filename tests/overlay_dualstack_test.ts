/**
 * podplex's cluster network in dual stack and IPv6 only, end to end on real netns: simulated
 * nodes on an underlay bridge with IPv4 and IPv6 addresses, a real etcd (ports 23950-23979),
 * the agents of `podplex serve --cluster-network`, pods ADDed by `bin/podplex`. The IPv4
 * VTEP `podplex.1` runs over the IPv4 underlay, the IPv6 one `podplex-v6.1` over the IPv6
 * underlay (flannel's `flannel.1` and `flannel-v6.1`).
 *
 * Names start with `ppg`; the underlay is 10.231.<r>.0/24 and fd31:0:<r>::/64, the pods
 * 10.232.0.0/16 and fd32:0:1::/56 (fd32:0:2::/56 in the IPv6-only cluster).
 */
import assert from "node:assert/strict";
import { parseCidr } from "../conf/ip.ts";
import { readDirectRoutes } from "../delegates/main/overlay/direct.ts";
import { Netlink } from "../ffi/mod.ts";
import { type OverlayPod, OverlayRig, type OverlayRigOptions } from "./_overlay_rig.ts";
import { haveEtcd } from "./etcd_server.ts";
import { ipJson, isRoot } from "./testutils.ts";

const ignore = !isRoot || !haveEtcd();
const PREFIX = "/coreos.com/network";
const BASE: OverlayRigOptions = {
  tag: "g",
  underlayBase: "10.231",
  underlay6: "fd31:0",
  etcdPorts: [23950, 23979],
  network: "10.232.0.0/16",
  ipv6Network: "fd32:0:1::/56",
};

/** Node `i`'s direct routes (host-gw, DirectRouting) on eth0 into the cluster network of `f`. */
function routesOf(rig: OverlayRig, i: number, f: 4 | 6): string[] {
  using nl = Netlink.open(`/run/netns/${rig.nodes[i].ns}`);
  const net = parseCidr(f === 4 ? BASE.network! : BASE.ipv6Network!);
  return readDirectRoutes(nl, nl.requireLink("eth0").index, net);
}

/** A TCP server in `toNs` on `ip` answers one connection from `fromNs`; what the client read. */
const SERVER = `import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
s.settimeout(5)
print("ready", flush=True)
try:
    c, peer = s.accept()
    c.sendall(("hello " + peer[0]).encode())
    c.close()
except socket.timeout:
    pass`;
const CLIENT = `import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
print(s.recv(128).decode())`;

async function tcp(from: OverlayPod, to: OverlayPod, ip: string): Promise<string> {
  const port = String(20000 + Math.floor(Math.random() * 20000));
  const srv = new Deno.Command("ip", {
    args: ["netns", "exec", to.ns, "python3", "-c", SERVER, ip, port],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines = srv.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    const first = await lines.read();
    if (first.value?.trim() !== "ready") throw new Error(`TCP server on ${ip}: ${first.value}`);
    const out = await new Deno.Command("ip", {
      args: ["netns", "exec", from.ns, "python3", "-c", CLIENT, ip, port],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return out.success ? dec.decode(out.stdout).trim() : `failed: ${dec.decode(out.stderr)}`;
  } finally {
    await lines.cancel().catch(() => {});
    await srv.stderr.cancel().catch(() => {});
    await srv.status;
  }
}

/** A UDP receiver in `toNs` on `ip` prints the source of what `fromNs` sends it. */
const SEEN = `import socket, sys, threading, time
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
r = socket.socket(fam, socket.SOCK_DGRAM)
r.bind((sys.argv[1], 0))
r.settimeout(5)
print(r.getsockname()[1], flush=True)
try:
    print(r.recvfrom(64)[1][0], flush=True)
except socket.timeout:
    print("timeout", flush=True)`;
const SEND = `import socket, sys, time
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
for _ in range(3):
    s.sendto(b"ppg", (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.05)`;

/** The source address a datagram from `fromNs` to `ip` (in `toNs`) arrives with. */
async function sourceSeen(fromNs: string, toNs: string, ip: string): Promise<string> {
  const recv = new Deno.Command("ip", {
    args: ["netns", "exec", toNs, "python3", "-c", SEEN, ip],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = recv.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    const port = (await out.read()).value?.trim() ?? "";
    if (!/^\d+$/.test(port)) throw new Error(`UDP receiver on ${ip}: ${port}`);
    await new Deno.Command("ip", {
      args: ["netns", "exec", fromNs, "python3", "-c", SEND, ip, port],
    }).output();
    let text = "";
    for (;;) {
      const r = await out.read();
      if (r.done) break;
      text += r.value;
    }
    return text.trim();
  } finally {
    await recv.stderr.cancel().catch(() => {});
    await recv.status;
  }
}

const v4 = (p: OverlayPod) => (p.ips ?? []).find((a) => !a.includes(":"));
const v6 = (p: OverlayPod) => (p.ips ?? []).find((a) => a.includes(":"));

/** The pod's global addresses on eth0 as the kernel has them (`addr/len`), sorted. */
async function kernelAddrs(p: OverlayPod): Promise<string[]> {
  const links = await ipJson(p.ns, "addr", "show", "dev", "eth0") as Array<
    { addr_info: Array<{ local: string; prefixlen: number; scope: string }> }
  >;
  return links[0].addr_info.filter((a) => a.scope === "global")
    .map((a) => `${a.local}/${a.prefixlen}`).sort();
}

/** Pings every other pod at each of `fams`' addresses (ping -4 / -6 by the address). */
async function pingAll(rig: OverlayRig, pods: OverlayPod[], fams: Array<4 | 6>) {
  for (const a of pods) {
    for (const b of pods) {
      if (a === b) continue;
      for (const f of fams) {
        const to = f === 4 ? v4(b)! : v6(b)!;
        assert.ok(await rig.ping(a, to, 1), `ping -${f} node${a.node} -> node${b.node} ${to}`);
      }
    }
  }
}

/** Both VTEPs of every node in `nodes` hold exactly what the other leases ask for. */
async function assertExact(rig: OverlayRig, nodes: number[], fams: Array<4 | 6>, why: string) {
  const leases = await rig.leases();
  for (const i of nodes) {
    for (const f of fams) {
      assert.deepEqual(
        rig.overlay(i, undefined, f),
        rig.expected(i, leases, 1, f),
        `${why}: node${i} IPv${f}`,
      );
    }
  }
}

/** Until every node in `nodes` has `n` routes on each VTEP of `fams`. */
async function routesReach(rig: OverlayRig, nodes: number[], fams: Array<4 | 6>, n: number) {
  const ms = await rig.until(
    () => nodes.every((i) => fams.every((f) => rig.overlay(i, undefined, f).routes.length === n)),
    5000,
  );
  assert.ok(ms >= 0, `nodes ${nodes} did not reach ${n} routes per family`);
}

Deno.test({
  name: "cluster network in dual stack: 3 nodes on VXLAN over both underlays, pods get one " +
    "address per family and reach each other over both (ping, TCP); one node leaves and both " +
    "families' entries go from the others",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({
      ...BASE,
      nodes: 3,
      conf: { leaseTtlSec: 30, resyncSec: 60 },
    });
    for (let i = 0; i < 3; i++) await rig.startAgent(i);
    const pods = [await rig.addPod(0), await rig.addPod(1), await rig.addPod(2)];
    const leases = await rig.leases();
    assert.equal(leases.length, 3);
    for (const [i, p] of pods.entries()) {
      const l = leases.find((x) => x.node === rig.nodes[i].name)!;
      assert.equal(l.publicIp, rig.nodes[i].ip);
      assert.equal(l.publicIpv6, rig.nodes[i].ip6);
      assert.ok(l.subnet6Text?.startsWith("fd32:0:1:"), l.key);
      // One address of each family in the CNI result, in the lease's subnets, and on eth0.
      assert.equal(p.ips?.length, 2, `node${i}'s pod: ${p.ips}`);
      const a4 = v4(p)!, a6 = v6(p)!;
      assert.ok(a4.startsWith(l.subnetText!.split(".").slice(0, 3).join(".")), a4);
      assert.ok(a6.startsWith(l.subnet6Text!.replace(/::\/64$/, ":")), `${a6} in ${l.key}`);
      const kernel = await kernelAddrs(p);
      assert.equal(kernel.length, 2, `eth0 of node${i}'s pod: ${kernel}`);
      assert.ok(
        kernel.some((k) => k.startsWith(`${a4}/`)) && kernel.some((k) => k.startsWith(`${a6}/`)),
      );
    }
    await routesReach(rig, [0, 1, 2], [4, 6], 2);
    await assertExact(rig, [0, 1, 2], [4, 6], "3 nodes");
    // `net nodes` and `graph` show both families of every node.
    const conf = rig.nodes[0].podplexConf;
    const nodes = await rig.podplex(0, "net", "nodes", "--config", conf);
    const graph = await rig.podplex(0, "graph", "--config", conf);
    assert.equal(nodes.code + graph.code, 0, nodes.err + graph.err);
    for (const l of leases) {
      assert.ok(nodes.out.includes(`${l.subnetText}, ${l.subnet6Text}`), nodes.out);
      assert.ok(nodes.out.includes(`${l.publicIp}, ${l.publicIpv6}`), nodes.out);
      assert.ok(graph.out.includes(`${l.subnetText} ${l.subnet6Text}`), graph.out);
      assert.ok(graph.out.includes(`"${l.publicIp} ${l.publicIpv6}"`), graph.out);
    }
    // The IPv6 VTEP's FDB points at the peers' IPv6 underlay addresses.
    const fdb6 = rig.overlay(0, undefined, 6).fdb.join(" ");
    for (const n of rig.nodes.slice(1)) assert.ok(fdb6.includes(`dst ${n.ip6}`), fdb6);

    await pingAll(rig, pods, [4, 6]);
    for (const [a, b] of [[0, 1], [1, 2], [2, 0]]) {
      for (const ip of [v4(pods[b])!, v6(pods[b])!]) {
        // No translation pod to pod: the server sees the client pod's own address.
        const own = ip.includes(":") ? v6(pods[a]) : v4(pods[a]);
        assert.equal(await tcp(pods[a], pods[b], ip), `hello ${own}`, `TCP ${a} -> ${b} ${ip}`);
      }
    }

    // Node 2 leaves: its daemon stopped, `podplex net leave`; both families' entries go.
    await rig.stopAgent(2, "SIGTERM");
    const r = await rig.podplex(2, "net", "leave", "--network", rig.nodes[2].clusterConf);
    assert.equal(r.code, 0, r.err);
    await routesReach(rig, [0, 1], [4, 6], 1);
    await assertExact(rig, [0, 1], [4, 6], "after node2 left");
    assert.equal((await rig.leases()).length, 2);
    for (const f of [4, 6] as const) {
      assert.deepEqual(rig.overlay(2, undefined, f).routes, [], `node2's IPv${f} VTEP is gone`);
    }
    await pingAll(rig, pods.slice(0, 2), [4, 6]);
  },
});

Deno.test({
  name: "cluster network IPv6 only (EnableIPv4 false): 3 nodes, only podplex-v6.1, pods " +
    "with one IPv6 address ping each other across nodes",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({
      ...BASE,
      nodes: 3,
      network: null,
      ipv6Network: "fd32:0:2::/56",
      conf: { leaseTtlSec: 30, resyncSec: 60 },
    });
    for (let i = 0; i < 3; i++) await rig.startAgent(i);
    const pods = [await rig.addPod(0), await rig.addPod(1), await rig.addPod(2)];
    const config = JSON.parse((await rig.client.get(`${PREFIX}/config`))!.value);
    assert.equal(config.EnableIPv4, false, JSON.stringify(config));
    assert.equal(config.EnableIPv6, true);
    for (const l of await rig.leases()) {
      assert.match(l.key, /\/subnets\/0\.0\.0\.0-0&fd32:0:2:[0-9a-f]*::-64$/);
      assert.equal(l.subnet, undefined);
    }
    for (const p of pods) {
      assert.equal(p.ips?.length, 1, `${p.ips}`);
      assert.ok(p.ip.startsWith("fd32:0:2:"), p.ip);
      assert.equal((await kernelAddrs(p)).length, 1);
    }
    await routesReach(rig, [0, 1, 2], [6], 2);
    await assertExact(rig, [0, 1, 2], [6], "IPv6 only");
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(rig.overlay(i, undefined, 4).routes, [], `node${i}: no IPv4 VTEP`);
    }
    await pingAll(rig, pods, [6]);
    assert.equal(await tcp(pods[0], pods[2], pods[2].ip), `hello ${pods[0].ip}`);
  },
});

Deno.test({
  name: "cluster network in dual stack: a flanneld-format lease written by hand (PublicIPv6, " +
    "BackendV6Data) is read by a podplex node, which programs its IPv4 and IPv6 entries",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({
      ...BASE,
      nodes: 1,
      conf: { leaseTtlSec: 30, resyncSec: 60 },
    });
    await rig.startAgent(0);
    // What flanneld writes (pkg/subnet/etcd: key MakeSubnetKey(sn, sn6), value LeaseAttrs
    // marshalled: PublicIP, PublicIPv6, BackendType, BackendData and BackendV6Data as
    // vxlanLeaseAttrs {VNI, VtepMAC}), attached to an etcd lease of its TTL.
    const mac4 = "6a:1f:00:00:00:04", mac6 = "6a:1f:00:00:00:06";
    const pub4 = `${rig.net24}.99`, pub6 = `${rig.net64}:99`;
    const key = `${PREFIX}/subnets/10.232.200.0-24&fd32:0:1:c8::-64`;
    const value = `{"PublicIP":"${pub4}","PublicIPv6":"${pub6}","BackendType":"vxlan",` +
      `"BackendData":{"VNI":1,"VtepMAC":"${mac4}"},"BackendV6Data":{"VNI":1,"VtepMAC":"${mac6}"}}`;
    const { id } = await rig.client.leaseGrant(60);
    await rig.client.put(key, value, id);
    const want4 = {
      routes: ["10.232.200.0/24 via 10.232.200.0"],
      neighbours: [`10.232.200.0 ${mac4}`],
      fdb: [`${mac4} dst ${pub4}`],
    };
    const want6 = {
      routes: ["fd32:0:1:c8::/64 via fd32:0:1:c8::"],
      neighbours: [`fd32:0:1:c8:: ${mac6}`],
      fdb: [`${mac6} dst ${pub6}`],
    };
    const ms = await rig.until(() => rig.overlay(0, undefined, 6).routes.length === 1, 5000);
    assert.ok(ms >= 0, `no IPv6 route for the flanneld lease: ${await rig.log(0)}`);
    assert.deepEqual(rig.overlay(0, undefined, 4), want4);
    assert.deepEqual(rig.overlay(0, undefined, 6), want6);
    // It goes (flanneld's lease revoked): both families' entries go.
    await rig.client.leaseRevoke(id);
    await routesReach(rig, [0], [4, 6], 0);
    assert.deepEqual(rig.overlay(0, undefined, 6).fdb, []);
    assert.deepEqual(rig.overlay(0, undefined, 4).fdb, []);
  },
});

Deno.test({
  name: "cluster network host-gw in dual stack: 3 nodes on one bridge route each other's " +
    "IPv4 and IPv6 subnets via their underlay addresses (no VTEP); pods ping over both; " +
    "ipMasq masquerades both families leaving the cluster network, pod to pod never",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({
      ...BASE,
      nodes: 3,
      conf: { backend: "host-gw", ipMasq: true, leaseTtlSec: 30, resyncSec: 60 },
    });
    for (let i = 0; i < 3; i++) await rig.startAgent(i);
    const pods = [await rig.addPod(0), await rig.addPod(1), await rig.addPod(2)];
    const routes = (i: number, f: 4 | 6) => routesOf(rig, i, f);
    const leases = await rig.leases();
    const want = (i: number, f: 4 | 6) =>
      leases.filter((l) => l.node !== rig.nodes[i].name).map((l) =>
        f === 4 ? `${l.subnetText} via ${l.publicIp}` : `${l.subnet6Text} via ${l.publicIpv6}`
      ).sort();
    const ms = await rig.until(
      () => [0, 1, 2].every((i) => routes(i, 4).length === 2 && routes(i, 6).length === 2),
      5000,
    );
    assert.ok(ms >= 0, "every node routes the others' subnets in both families");
    for (let i = 0; i < 3; i++) {
      for (const f of [4, 6] as const) assert.deepEqual(routes(i, f), want(i, f), `node${i} v${f}`);
      using nl = Netlink.open(`/run/netns/${rig.nodes[i].ns}`);
      assert.equal(nl.getLink("podplex.1"), null, "no IPv4 VTEP with host-gw");
      assert.equal(nl.getLink("podplex-v6.1"), null, "no IPv6 VTEP with host-gw");
    }
    await pingAll(rig, pods, [4, 6]);
    for (const ip of [v4(pods[2])!, v6(pods[2])!]) {
      const own = ip.includes(":") ? v6(pods[0]) : v4(pods[0]);
      assert.equal(await sourceSeen(pods[0].ns, pods[2].ns, ip), own, `pod to pod ${ip}`);
    }
    // To node1's underlay addresses (outside the cluster network): node0's own, both families.
    const n0 = rig.nodes[0], n1 = rig.nodes[1];
    assert.equal(await sourceSeen(pods[0].ns, n1.ns, n1.ip), n0.ip, "IPv4 masqueraded");
    assert.equal(await sourceSeen(pods[0].ns, n1.ns, n1.ip6!), n0.ip6, "IPv6 masqueraded");
  },
});

Deno.test({
  name: "cluster network vxlan DirectRouting in dual stack: two nodes on one segment route to " +
    "each other directly in both families, the third (beyond a router netns) is reached over " +
    "both VTEPs; pods ping across both over IPv4 and IPv6",
  ignore,
  async fn() {
    await using rig = await OverlayRig.start({
      ...BASE,
      nodes: 2,
      conf: { directRouting: true, leaseTtlSec: 30, resyncSec: 60 },
    });
    await rig.addRoutedNode();
    for (let i = 0; i < 3; i++) await rig.startAgent(i);
    const pods = [await rig.addPod(0), await rig.addPod(1), await rig.addPod(2)];
    const leases = await rig.leases();
    const by = (i: number) => leases.find((l) => l.node === rig.nodes[i].name)!;
    const direct = (i: number, f: 4 | 6) =>
      f === 4
        ? `${by(i).subnetText} via ${rig.nodes[i].ip}`
        : `${by(i).subnet6Text} via ${rig.nodes[i].ip6}`;
    const vxlan = (i: number, f: 4 | 6) => {
      const sn = f === 4 ? by(i).subnetText! : by(i).subnet6Text!;
      return `${sn} via ${sn.split("/")[0]}`;
    };
    const ms = await rig.until(
      () =>
        [4, 6].every((f) =>
          routesOf(rig, 0, f as 4 | 6).length === 1 &&
          rig.overlay(2, undefined, f as 4 | 6).routes.length === 2
        ),
      5000,
    );
    assert.ok(ms >= 0, "every node programmed both families");
    for (const f of [4, 6] as const) {
      // On the shared segment: a route via the peer's address of that family.
      assert.deepEqual(routesOf(rig, 0, f), [direct(1, f)], `node0 IPv${f}`);
      assert.deepEqual(routesOf(rig, 1, f), [direct(0, f)], `node1 IPv${f}`);
      for (const i of [0, 1]) {
        const vx = rig.overlay(i, undefined, f);
        assert.deepEqual(vx.routes, [vxlan(2, f)], `node${i} IPv${f}: only node2 over VXLAN`);
        const mac = f === 4 ? by(2).vtepMac : by(2).vtepMac6;
        const dst = f === 4 ? rig.nodes[2].ip : rig.nodes[2].ip6;
        assert.deepEqual(vx.fdb, [`${mac} dst ${dst}`], `node${i} IPv${f} FDB`);
      }
      // Beyond the router: everything over VXLAN.
      assert.deepEqual(routesOf(rig, 2, f), []);
      assert.deepEqual(rig.overlay(2, undefined, f), rig.expected(2, leases, 1, f));
    }
    await pingAll(rig, pods, [4, 6]);
  },
});
