/**
 * The Netlink class: one NETLINK_ROUTE socket bound to one netns, with typed operations on
 * links, addresses, routes, neighbours and FDB entries. The work is in link.ts,
 * link_add.ts, addr.ts, route.ts and neigh.ts; this class only holds the socket.
 *
 * @module
 */
import { NlSocket } from "./_socket.ts";
import { ERRNO, NetlinkError, NLE } from "./errors.ts";
import * as addr from "./addr.ts";
import * as brvlan from "./bridge_vlan.ts";
import * as link from "./link.ts";
import * as add from "./link_add.ts";
import * as neigh from "./neigh.ts";
import * as route from "./route.ts";
import { type NetNs, withNetns } from "./netns.ts";

type LinkRef = link.LinkRef;

/**
 * A netlink socket in one netns. Open it with {@linkcode Netlink.open}; it stays bound to
 * that netns wherever it is used, so no netns window is needed for its operations.
 *
 * Every operation is synchronous and throws {@linkcode NetlinkError} on failure (kind
 * "notfound", "exists", "notsupported", "busy" or "other"); malformed address text throws
 * CniError code 7.
 *
 * @example
 * ```ts
 * using nl = Netlink.open("/run/netns/pod1");
 * nl.addDummy({ name: "dummy0" });
 * nl.setUp("dummy0");
 * nl.addAddr("dummy0", "10.0.0.2/24");
 * ```
 */
export class Netlink implements Disposable {
  #sock: NlSocket;

  private constructor(sock: NlSocket) {
    this.#sock = sock;
  }

  /**
   * Opens a socket in `ns` (entered just for the socket call) or in the current netns.
   *
   * @param ns an open NetNs, a netns path, or an `ip netns` name
   * @throws {NetlinkError} kind "notfound" when the netns does not exist
   */
  static open(ns?: NetNs | string): Netlink {
    return new Netlink(ns === undefined ? new NlSocket() : withNetns(ns, () => new NlSocket()));
  }

  /** Closes the socket; calling it again does nothing. */
  close(): void {
    this.#sock.close();
  }

  /** Closes the socket (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }

  // ---- links

  /** A link by name or ifindex, or null when it does not exist. */
  getLink(nameOrIndex: LinkRef): link.LinkInfo | null {
    return link.getLink(this.#sock, nameOrIndex);
  }

  /**
   * A link by name or ifindex.
   *
   * @throws {NetlinkError} kind "notfound" when it does not exist
   */
  requireLink(nameOrIndex: LinkRef): link.LinkInfo {
    const l = link.getLink(this.#sock, nameOrIndex);
    if (!l) {
      const op = `find link ${link.refText(nameOrIndex)}`;
      throw new NetlinkError(op, NLE.NODEV, "notfound", "No such device", ERRNO.ENODEV);
    }
    return l;
  }

  /** Every link of this netns. */
  listLinks(): link.LinkInfo[] {
    return link.listLinks(this.#sock);
  }

  /** Creates a veth pair: `name` here, `peerName` in `peerNs` (or here). */
  addVeth(o: add.VethOptions): void {
    add.addVeth(this.#sock, o);
  }

  /** Creates a bridge. */
  addBridge(o: { name: string; mtu?: number; mac?: string; vlanFiltering?: boolean }): void {
    add.addBridge(this.#sock, o);
  }

  /** Creates a VXLAN device (kernel default port 8472 when `port` is absent). */
  addVxlan(o: add.VxlanOptions): void {
    add.addVxlan(this.#sock, o);
  }

  /** Creates a macvlan on `master` (an ifindex here), directly in `ns` when given. */
  addMacvlan(o: add.MacvlanOptions): void {
    add.addMacvlan(this.#sock, o);
  }

  /** Creates an ipvlan; kind "notsupported" when the kernel lacks the module. */
  addIpvlan(o: add.IpvlanOptions): void {
    add.addIpvlan(this.#sock, o);
  }

  /** Creates a dummy link. */
  addDummy(o: { name: string; mtu?: number }): void {
    add.addDummy(this.#sock, o);
  }

  /** Deletes a link; kind "notfound" when missing. */
  deleteLink(nameOrIndex: LinkRef): void {
    link.deleteLink(this.#sock, nameOrIndex);
  }

  /** Deletes a link when it exists (a missing one costs no error object); whether it did. */
  deleteLinkIfExists(nameOrIndex: LinkRef): boolean {
    return link.deleteLinkIfExists(this.#sock, nameOrIndex);
  }

  /** Deletes every link of IFLA_GROUP `group` with ONE request; "notfound" when none. */
  deleteGroup(group: number): void {
    link.deleteGroup(this.#sock, group);
  }

  /**
   * {@linkcode Netlink.deleteGroup} whose kernel wait (~20 ms, an RCU grace period) runs on
   * a worker thread, so that several teardowns overlap. The caller owns this socket until
   * the promise settles: any other operation on it meanwhile throws (libnl's socket is not
   * thread-safe), and close() is deferred until it settles.
   *
   * @throws {RangeError} for group 0
   * @throws {NetlinkError} kind "notfound" when no link is in the group
   */
  deleteGroupAsync(group: number): Promise<void> {
    return link.deleteGroupAsync(this.#sock, group);
  }

  /** Brings a link up. */
  setUp(l: LinkRef): void {
    link.setUp(this.#sock, l);
  }

  /** Brings a link down. */
  setDown(l: LinkRef): void {
    link.setDown(this.#sock, l);
  }

  /** Sets the MTU. */
  setMtu(l: LinkRef, mtu: number): void {
    link.setMtu(this.#sock, l, mtu);
  }

  /** Sets the MAC address (`aa:bb:cc:dd:ee:ff`). */
  setMac(l: LinkRef, mac: string): void {
    link.setMac(this.#sock, l, mac);
  }

  /** Renames a link (it must be down). */
  rename(l: LinkRef, newName: string): void {
    link.rename(this.#sock, l, newName);
  }

  /** Enslaves a link to `master` (ifindex), or frees it with null. */
  setMaster(l: LinkRef, master: number | null): void {
    link.setMaster(this.#sock, l, master);
  }

  /** Moves a link to another netns. */
  setNetns(l: LinkRef, ns: NetNs): void {
    link.setNetns(this.#sock, l, ns);
  }

  /** Turns promiscuous mode on or off. */
  setPromisc(l: LinkRef, on: boolean): void {
    link.setPromisc(this.#sock, l, on);
  }

  /** Puts a link in an IFLA_GROUP. */
  setGroup(l: LinkRef, group: number): void {
    link.setGroup(this.#sock, l, group);
  }

  /** Sets hairpin / isolated on a bridge port. */
  setBridgePort(l: LinkRef, o: { hairpin?: boolean; isolated?: boolean }): void {
    link.setBridgePort(this.#sock, l, o);
  }

  /**
   * Turns VLAN filtering on or off on an existing bridge.
   *
   * @throws {NetlinkError} kind "notsupported" when the kernel has no bridge VLAN filtering
   */
  setBridgeVlanFiltering(bridge: LinkRef, on: boolean): void {
    brvlan.setBridgeVlanFiltering(this.#sock, bridge, on);
  }

  /**
   * Adds a VLAN to a bridge port (`self`: to the bridge device itself).
   *
   * @throws {RangeError} for a VLAN id outside 1 to 4094
   * @throws {NetlinkError} kind "notsupported" when the kernel has no bridge VLAN filtering
   */
  bridgeVlanAdd(port: LinkRef, o: brvlan.BridgeVlanOptions): void {
    brvlan.bridgeVlanAdd(this.#sock, port, o);
  }

  /**
   * Removes a VLAN from a bridge port (`self`: from the bridge device itself).
   *
   * @throws {RangeError} for a VLAN id outside 1 to 4094
   */
  bridgeVlanDel(port: LinkRef, vid: number, o?: { self?: boolean }): void {
    brvlan.bridgeVlanDel(this.#sock, port, vid, o);
  }

  // ---- addresses

  /** Adds `10.0.0.2/24` or `fd00::2/64`; kind "exists" when present. */
  addAddr(l: LinkRef, cidr: string, o?: { noDad?: boolean }): void {
    addr.addAddr(this.#sock, l, cidr, o);
  }

  /** Removes an address; kind "notfound" when absent. */
  delAddr(l: LinkRef, cidr: string): void {
    addr.delAddr(this.#sock, l, cidr);
  }

  /** Addresses of this netns, of one link and/or family when given. */
  listAddrs(l?: LinkRef, family?: 4 | 6): addr.AddrInfo[] {
    return addr.listAddrs(this.#sock, l, family);
  }

  // ---- routes

  /** Adds a route; kind "exists" when the same route is there. */
  addRoute(r: route.AddRouteOptions): void {
    route.addRoute(this.#sock, r);
  }

  /** Deletes a route; kind "notfound" when none matches. */
  delRoute(r: { dst: string; gw?: string; dev?: number; table?: number; metric?: number }): void {
    route.delRoute(this.#sock, r);
  }

  /** Routes of this netns (table main unless `table` is given; 0 for all tables). */
  listRoutes(o?: { family?: 4 | 6; table?: number; dev?: number }): route.RouteInfo[] {
    return route.listRoutes(this.#sock, o);
  }

  // ---- neighbours and FDB

  /** Adds a neighbour entry (permanent unless `permanent` is false). */
  addNeigh(o: { dev: number; ip: string; mac: string; permanent?: boolean }): void {
    neigh.addNeigh(this.#sock, o);
  }

  /** Deletes the neighbour entry for `ip` on `dev`; kind "notfound" when there is none. */
  delNeigh(o: { dev: number; ip: string }): void {
    neigh.delNeigh(this.#sock, o);
  }

  /** Neighbour entries, of one device and/or family when given. */
  listNeigh(o?: { dev?: number; family?: 4 | 6 }): neigh.NeighEntry[] {
    return neigh.listNeigh(this.#sock, o);
  }

  /** Adds (or with `append`, appends) an FDB entry. */
  addFdb(o: neigh.AddFdbOptions): void {
    neigh.addFdb(this.#sock, o);
  }

  /** Deletes an FDB entry. */
  delFdb(o: { dev: number; mac: string; dst?: string; self?: boolean }): void {
    neigh.delFdb(this.#sock, o);
  }

  /** FDB entries, of one device when given. */
  listFdb(dev?: number): neigh.FdbEntry[] {
    return neigh.listFdb(this.#sock, dev);
  }
}
