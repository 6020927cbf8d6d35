/**
 * The CNI result of a DHCP lease, as the reference daemon builds it (plugins/ipam/dhcp
 * daemon.go Allocate, lease.go Routes): one IP `yiaddr/mask` with the first router as
 * gateway; routes from option 121 when present (an on-link route, router 0.0.0.0, gets
 * scope link), else option 33 plus a default route via the first router; `priority` on
 * every route. podplex adds `dns` from options 6, 15 and 119, which the reference drops.
 *
 * @module
 */
import { CniError, Code } from "../../../conf/errors.ts";
import type { CniDns, CniResult, CniRoute } from "../../../conf/types.ts";
import type { LeaseOptions } from "./message.ts";

const RT_SCOPE_LINK = 253;

function routesOf(o: LeaseOptions): CniRoute[] {
  if (o.classlessRoutes?.length) {
    return o.classlessRoutes.map((r) => {
      const route: CniRoute = { dst: r.dst, gw: r.gw };
      if (r.gw === "0.0.0.0") route.scope = RT_SCOPE_LINK;
      return route;
    });
  }
  const routes: CniRoute[] = o.staticRoutes.map((r) => ({ dst: r.dst, gw: r.gw }));
  if (o.routers[0]) routes.push({ dst: "0.0.0.0/0", gw: o.routers[0] });
  return routes;
}

function dnsOf(o: LeaseOptions): CniDns | undefined {
  const dns: CniDns = {};
  if (o.dns.length) dns.nameservers = o.dns;
  if (o.domain) dns.domain = o.domain;
  if (o.search.length) dns.search = o.search;
  return Object.keys(dns).length ? dns : undefined;
}

/**
 * The canonical IPAM result of a lease.
 *
 * @param address the leased address (yiaddr)
 * @param o the ACK's options
 * @param priority the route metric from the conf (0: none)
 * @throws {CniError} code 102 when the ACK has no subnet mask (the reference's error too)
 */
export function leaseResult(address: string, o: LeaseOptions, priority = 0): CniResult {
  if (o.prefix === undefined) {
    throw new CniError(
      Code.DelegateFailed,
      `DHCP option Subnet Mask not found in the DHCPACK for ${address}`,
    );
  }
  const ip: { address: string; gateway?: string } = { address: `${address}/${o.prefix}` };
  if (o.routers[0]) ip.gateway = o.routers[0];
  const routes = routesOf(o);
  if (priority) { for (const r of routes) r.priority = priority; }
  const result: CniResult = { cniVersion: "1.1.0", ips: [ip], routes };
  const dns = dnsOf(o);
  if (dns) result.dns = dns;
  return result;
}
