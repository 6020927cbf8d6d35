/**
 * podplex's kernel layer: netlink (through libnl-3), network namespaces and sysctls
 * (through libc), all synchronous. This folder is the only place that calls
 * `Deno.dlopen`; no pointer leaves it.
 *
 * - {@linkcode Netlink}: links, addresses, routes, neighbours and FDB entries in one netns.
 * - {@linkcode NetNs} and {@linkcode withNetns}: open/create/remove a netns, run code inside.
 * - {@linkcode readSysctl} / {@linkcode writeSysctl}.
 * - {@linkcode NetlinkError}: every failure, with `kind` "notfound" | "exists" |
 *   "notsupported" | "busy" | "notnetns" | "other".
 *
 * @example
 * ```ts
 * using ns = NetNs.open("/run/netns/pod1");
 * using nl = Netlink.open(ns);
 * nl.addVeth({ name: "eth0", peerName: "veth1234", peerNs: NetNs.current() });
 * nl.addAddr("eth0", "10.0.0.2/24");
 * nl.setUp("eth0");
 * nl.addRoute({ dst: "0.0.0.0/0", gw: "10.0.0.1" });
 * writeSysctl("net/ipv4/conf/eth0/arp_notify", "1", ns);
 * ```
 *
 * @module
 */
export { setLibraryPaths } from "./_lib.ts";
export { NetlinkError, type NetlinkErrorKind } from "./errors.ts";
export { NetNs, netnsPath, withNetns } from "./netns.ts";
export { Netlink } from "./netlink.ts";
export type { LinkInfo, LinkRef, VxlanInfo } from "./link.ts";
export type { IpvlanOptions, MacvlanOptions, VethOptions, VxlanOptions } from "./link_add.ts";
export type { AddrInfo } from "./addr.ts";
export type { BridgeVlanOptions } from "./bridge_vlan.ts";
export { type AddRouteOptions, type RouteInfo, RT_TABLE_MAIN } from "./route.ts";
export type { AddFdbOptions, FdbEntry, NeighEntry } from "./neigh.ts";
export { runNft, runNftIn } from "./nftables.ts";
export { readSysctl, sysctlPath, writeSysctl } from "./sysctl.ts";
