/**
 * Helpers of the cluster network's dual-stack tests (tests/overlay_dualstack*_test.ts): the
 * rig's options on this suite's names and subnets (`ppg`, 10.231 / fd31:0 underlay, 10.232 /
 * fd32:0:1::/56 pods, etcd on 23950-23979), TCP between pods, both families' checks.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseCidr } from "../conf/ip.ts";
import { readDirectRoutes } from "../delegates/main/overlay/direct.ts";
import { Netlink } from "../ffi/mod.ts";
import type { OverlayPod, OverlayRig, OverlayRigOptions } from "./_overlay_rig.ts";
import { ipJson } from "./testutils.ts";

/** The rig's options of the dual-stack tests. */
export const BASE: OverlayRigOptions = {
  tag: "g",
  underlayBase: "10.231",
  underlay6: "fd31:0",
  etcdPorts: [23950, 23979],
  network: "10.232.0.0/16",
  ipv6Network: "fd32:0:1::/56",
};

/** Node `i`'s direct routes (host-gw, DirectRouting) on eth0 into the cluster network of `f`. */
export function routesOf(rig: OverlayRig, i: number, f: 4 | 6): string[] {
  using nl = Netlink.open(`/run/netns/${rig.nodes[i].ns}`);
  const net = parseCidr(f === 4 ? BASE.network! : BASE.ipv6Network!);
  return readDirectRoutes(nl, nl.requireLink("eth0").index, net);
}

export const v4 = (p: OverlayPod) => (p.ips ?? []).find((a) => !a.includes(":"));
export const v6 = (p: OverlayPod) => (p.ips ?? []).find((a) => a.includes(":"));

/** The pod's global addresses on eth0 as the kernel has them (`addr/len`), sorted. */
export async function kernelAddrs(p: OverlayPod): Promise<string[]> {
  const links = await ipJson(p.ns, "addr", "show", "dev", "eth0") as Array<
    { addr_info: Array<{ local: string; prefixlen: number; scope: string }> }
  >;
  return links[0].addr_info.filter((a) => a.scope === "global")
    .map((a) => `${a.local}/${a.prefixlen}`).sort();
}

/** Pings every other pod at each of `fams`' addresses (ping -4 / -6 by the address). */
export async function pingAll(rig: OverlayRig, pods: OverlayPod[], fams: Array<4 | 6>) {
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
export async function assertExact(
  rig: OverlayRig,
  nodes: number[],
  fams: Array<4 | 6>,
  why: string,
) {
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
export async function routesReach(rig: OverlayRig, nodes: number[], fams: Array<4 | 6>, n: number) {
  const ms = await rig.until(
    () => nodes.every((i) => fams.every((f) => rig.overlay(i, undefined, f).routes.length === n)),
    5000,
  );
  assert.ok(ms >= 0, `nodes ${nodes} did not reach ${n} routes per family`);
}
