/**
 * CHECK helpers of the link delegates: the prevResult CHECK needs, the sandbox interface it
 * names, and the reference's address and route validators.
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import { canonicalCidr } from "../../conf/ip.ts";
import type { CniInterface, CniIpConfig, CniResult, CniRoute } from "../../conf/types.ts";
import type { DelegateContext } from "../types.ts";
import type { Netlink } from "../../ffi/mod.ts";
import { canonicalNet, familyOf, sameIp, sameNet } from "./cidr.ts";

/** A CHECK failure: the spec gives no code; podplex uses 101 (the kernel state differs). */
export function checkFailed(msg: string): CniError {
  return new CniError(Code.KernelFailure, msg);
}

/** The prevResult CHECK needs. @throws {CniError} code 7 "Required prevResult missing" */
export function requirePrev(ctx: DelegateContext): CniResult {
  if (!ctx.prevResult) throw new CniError(Code.InvalidConfig, "Required prevResult missing");
  return ctx.prevResult;
}

/** The prevResult interface named CNI_IFNAME whose sandbox is CNI_NETNS. */
export function sandboxIface(prev: CniResult, ctx: DelegateContext): CniInterface {
  const i = prev.interfaces?.find((x) => x.name === ctx.env.ifname && x.sandbox === ctx.env.netns);
  if (!i) {
    throw checkFailed(
      `prevResult has no interface "${ctx.env.ifname}" in sandbox "${ctx.env.netns}"`,
    );
  }
  return i;
}

/**
 * Checks that every address of `ips` is on `ifname` with its connected route, as the
 * reference's `ValidateExpectedInterfaceIPs`.
 */
export function checkAddrs(cont: Netlink, ifname: string, ips: CniIpConfig[] = []): void {
  const link = cont.getLink(ifname);
  if (!link) throw checkFailed(`Cannot find container link "${ifname}"`);
  const have = new Set(cont.listAddrs(link.index).map((a) => canonicalCidr(a.cidr)));
  for (const ipc of ips) {
    const want = canonicalCidr(ipc.address);
    if (!have.has(want)) throw checkFailed(`Address "${want}" is not on "${ifname}"`);
    const net = canonicalNet(want);
    const routes = cont.listRoutes({ family: familyOf(want) });
    if (!routes.some((r) => sameNet(r.dst, net))) {
      throw checkFailed(`No route to "${net}" for address "${want}" on "${ifname}"`);
    }
  }
}

/**
 * Checks that every route of `routes` (dst, and gw when given) is in the container's tables.
 * A gw of 0.0.0.0 or :: is an on-link route (DHCP's option 121 gives those): no gateway.
 */
export function checkRoutes(cont: Netlink, routes: CniRoute[] = []): void {
  for (const want of routes) {
    const net = canonicalNet(want.dst);
    const gw = want.gw && !sameIp(want.gw, familyOf(net) === 4 ? "0.0.0.0" : "::")
      ? want.gw
      : undefined;
    const found = cont.listRoutes({ family: familyOf(net) }).some((r) =>
      sameNet(r.dst, net) && (!gw || (r.gw !== undefined && sameIp(r.gw, gw)))
    );
    if (!found) {
      throw checkFailed(`Route "${want.dst}" via "${want.gw ?? "-"}" is not in the routing table`);
    }
  }
}

/**
 * The first steps of every link delegate's CHECK: IPAM's CHECK when there is IPAM, then
 * prevResult and its interface for CNI_IFNAME in CNI_NETNS.
 */
export async function beginCheck(
  ipamType: string | undefined,
  ctx: DelegateContext,
): Promise<{ prev: CniResult; iface: CniInterface }> {
  if (ipamType) await ctx.ipam("CHECK");
  const prev = requirePrev(ctx);
  return { prev, iface: sandboxIface(prev, ctx) };
}

/** Checks that CHECK's addresses and routes from prevResult are in the container. */
export function checkL3(cont: Netlink, ifname: string, prev: CniResult): void {
  checkAddrs(cont, ifname, prev.ips);
  checkRoutes(cont, prev.routes);
}
