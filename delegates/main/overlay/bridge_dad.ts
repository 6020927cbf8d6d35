/**
 * The node's bridge usable over IPv6 at once. The bridge delegate adds the pods' IPv6
 * gateway as the reference bridge does, and the kernel gives the bridge a link-local
 * address when it gets its first port; it runs duplicate address detection on both, and for
 * about a second they are tentative: the node drops what its pods send to the gateway, and
 * it sends no neighbour solicitation on the bridge (the kernel needs a link-local source
 * that is not tentative), so IPv6 traffic from other nodes to its pods is dropped too. The
 * first IPv6 pings of a node's first pod were lost. Both addresses are the node's own (the
 * gateway is the first of the subnet leased to this node alone; the link-local one is
 * derived from the bridge's MAC), so DAD guards nothing here.
 *
 * @module
 */
import { Netlink } from "../../../ffi/mod.ts";
import { readSysctl, writeSysctl } from "../../../ffi/sysctl.ts";

/**
 * Turns DAD off on `bridge` (its `accept_dad`), once, and adds its IPv6 addresses (made
 * while DAD was on) again without DAD. Later ADDs find `accept_dad` 0 and change nothing, so
 * the pods already there see no change.
 *
 * @param nl netlink in the node's netns (`ns`: the same netns for the sysctl; default the
 *   current one)
 * @returns how many addresses were added again (0: nothing to do)
 */
export function bridgeWithoutDad(nl: Netlink, bridge: string, ns?: string): number {
  const key = `net/ipv6/conf/${bridge}/accept_dad`;
  const br = nl.getLink(bridge);
  if (!br || readSysctl(key, ns).trim() === "0") return 0;
  writeSysctl(key, "0", ns);
  const addrs = nl.listAddrs(br.index, 6);
  for (const a of addrs) {
    nl.delAddr(br.index, a.cidr);
    nl.addAddr(br.index, a.cidr, { noDad: true });
  }
  return addrs.length;
}

/**
 * {@linkcode bridgeWithoutDad} in the current netns, after an ADD on `bridge` (the cluster
 * network's, the flannel drop-in's): a failure costs only DAD's second, not the pod.
 */
export function bridgeWithoutDadAfterAdd(bridge: string): void {
  try {
    using nl = Netlink.open();
    bridgeWithoutDad(nl, bridge);
  } catch { /* the bridge's addresses become usable when DAD ends */ }
}
