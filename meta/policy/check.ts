/**
 * `policy check`'s answer: would a connection from one pod to another on a port/protocol be
 * allowed, and by what. Both ends count: the source's egress and the destination's ingress.
 *
 * @module
 */
import { type DirectionVerdict, judge, resolvePod } from "./resolve.ts";
import type { PodView, PolicyWorld, Protocol } from "./types.ts";

/** The verdict for one connection. */
export interface CheckResult {
  allowed: boolean;
  /** The network it was judged on (`cluster` or `ns/name`). */
  network: string;
  srcIp: string;
  dstIp: string;
  egress: DirectionVerdict;
  ingress: DirectionVerdict;
}

function ifaceOn(pod: PodView, network: string | undefined) {
  return pod.interfaces.find((i) => (network ? i.network === network : i.cluster));
}

/**
 * Judges a connection from `src` to `dst` on the cluster network (or on `network`).
 *
 * @returns the verdict, or an error text when a pod has no interface on that network
 */
export function checkConnection(
  world: PolicyWorld,
  src: PodView,
  dst: PodView,
  port: number,
  protocol: Protocol,
  network?: string,
): CheckResult | string {
  const where = network ?? "the cluster network";
  const si = ifaceOn(src, network);
  const di = ifaceOn(dst, network);
  if (!si?.ips.length) return `${src.namespace}/${src.name} has no address on ${where}`;
  if (!di?.ips.length) return `${dst.namespace}/${dst.name} has no address on ${where}`;
  const srcIp = si.ips[0];
  const dstIp = di.ips.find((ip) => ip.includes(":") === srcIp.includes(":")) ?? di.ips[0];
  const sr = resolvePod(world, src).interfaces.find((i) => i.ifname === si.ifname)!;
  const dr = resolvePod(world, dst).interfaces.find((i) => i.ifname === di.ifname)!;
  const egress = judge(sr, "egress", dstIp, port, protocol);
  const ingress = judge(dr, "ingress", srcIp, port, protocol);
  return {
    allowed: egress.allowed && ingress.allowed,
    network: network ?? "cluster",
    srcIp,
    dstIp,
    egress,
    ingress,
  };
}
