/**
 * Applying an IPAM result to the container interface, as the reference plugins'
 * `ipam.ConfigureIface`: addresses, link up, routes (a route without `gw` goes via the first
 * gateway of its family); and running IPAM ADD with its undo.
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import { canonicalCidr } from "../../conf/ip.ts";
import type { CniResult, CniRoute } from "../../conf/types.ts";
import type { DelegateContext } from "../types.ts";
import { type Netlink, type NetNs, writeSysctl } from "../../ffi/mod.ts";
import { canonicalNet, familyOf } from "./cidr.ts";
import { isKind, kernelError, type Rollback } from "./link_common.ts";

/** Runs IPAM ADD and fails when it returns no address (the reference's message). */
export async function ipamAdd(ctx: DelegateContext): Promise<CniResult> {
  const r = await ctx.ipam("ADD");
  if (!r?.ips?.length) {
    throw new CniError(Code.DelegateFailed, "IPAM plugin returned missing IP config");
  }
  return r;
}

/** {@linkcode ipamAdd}, with the lease's release pushed on `undo`. */
export async function ipamAddWithUndo(ctx: DelegateContext, undo: Rollback): Promise<CniResult> {
  const r = await ipamAdd(ctx);
  undo.push(() => ctx.ipam("DEL"));
  return r;
}

function enableIpv6(ns: NetNs, ifname: string): void {
  for (const dev of ["lo", ifname]) {
    try {
      writeSysctl(`net/ipv6/conf/${dev}/disable_ipv6`, "0", ns);
    } catch (err) {
      if (!isKind(err, "notfound")) throw kernelError(`Cannot enable IPv6 on "${dev}"`, err);
    }
  }
}

/** The first gateway of each family among the addresses. */
type FirstGateways = { 4?: string; 6?: string };

/**
 * Adds every address of `result` that points at `ifname` (enabling IPv6 before the first IPv6
 * one) and collects the first gateway per family.
 */
function addAddresses(
  cont: Netlink,
  ns: NetNs,
  link: { index: number },
  ifname: string,
  result: CniResult,
): FirstGateways {
  const gws: FirstGateways = {};
  let v6Enabled = false;
  for (const ipc of result.ips ?? []) {
    if (ipc.interface === undefined) continue;
    if (result.interfaces?.[ipc.interface]?.name !== ifname) {
      throw new CniError(
        Code.Internal,
        `Cannot add "${ipc.address}" to "${ifname}": invalid interface index`,
      );
    }
    if (familyOf(ipc.address) === 6 && !v6Enabled) {
      enableIpv6(ns, ifname);
      v6Enabled = true;
    }
    try {
      cont.addAddr(link.index, canonicalCidr(ipc.address));
    } catch (err) {
      throw kernelError(`Cannot add address "${ipc.address}" to "${ifname}"`, err);
    }
    if (ipc.gateway && gws[familyOf(ipc.gateway)] === undefined) {
      gws[familyOf(ipc.gateway)] = ipc.gateway;
    }
  }
  return gws;
}

/**
 * Applies the addresses and routes of `result` to `ifname` in the container, as the reference
 * plugins' `ipam.ConfigureIface` does: every IP must point at `ifname`, IPv6 is enabled when
 * needed, the link goes up, and a route without `gw` goes via the first gateway of its family.
 *
 * @throws {CniError} 101 naming the address or route that failed
 */
export function configureIface(cont: Netlink, ns: NetNs, ifname: string, result: CniResult): void {
  const link = cont.requireLink(ifname);
  const gws = addAddresses(cont, ns, link, ifname, result);
  try {
    cont.setUp(link.index);
  } catch (err) {
    throw kernelError(`Cannot set "${ifname}" up`, err);
  }
  for (const r of result.routes ?? []) {
    addRouteVia(cont, link.index, ifname, r, gws[familyOf(r.dst)]);
  }
}

function addRouteVia(
  cont: Netlink,
  dev: number,
  ifname: string,
  r: CniRoute,
  dfltGw?: string,
): void {
  const gw = r.gw ?? dfltGw;
  try {
    cont.addRoute({
      dst: canonicalNet(r.dst),
      gw,
      dev,
      mtu: r.mtu,
      advmss: r.advmss,
      metric: r.priority,
      table: r.table,
      scope: r.scope,
    });
  } catch (err) {
    throw kernelError(`Cannot add route "${r.dst} via ${gw ?? "-"} dev ${ifname}"`, err);
  }
}
