/**
 * Creating a delegate's link in the container netns: the veth pair of bridge and vxlan, and
 * the temporary-name-then-rename step every link delegate takes (the final name may collide
 * with a host link before the move; the spec wants ADD to fail when CNI_IFNAME exists).
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import type { LinkInfo, Netlink, NetNs } from "../../ffi/mod.ts";
import { deleteLinkIfExists, isKind, kernelError, randomHex } from "./link_common.ts";

/** A host-side veth name as the reference makes it: `veth` + 8 random hex chars. */
export function randomVethName(): string {
  return `veth${randomHex(4)}`;
}

/** A temporary link name for a link created in a netns before it is renamed to CNI_IFNAME. */
export function tempLinkName(): string {
  return `tmp${randomHex(4)}`;
}

/**
 * Fails when CNI_IFNAME already exists in the container (spec: "a plugin must fail if the
 * interface name already exists").
 */
export function requireFreeIfname(cont: Netlink, ifname: string, netns: string): void {
  if (cont.getLink(ifname)) {
    throw new CniError(
      Code.AlreadyExists,
      `Interface "${ifname}" already exists in netns "${netns}"`,
    );
  }
}

/**
 * Renames a link created under a temporary name in the container to CNI_IFNAME.
 *
 * @returns the renamed link as the kernel reports it
 */
export function renameInContainer(cont: Netlink, tmp: string, ifname: string): LinkInfo {
  try {
    cont.rename(tmp, ifname);
  } catch (err) {
    if (isKind(err, "exists")) {
      throw new CniError(
        Code.AlreadyExists,
        `Interface "${ifname}" already exists in the container`,
      );
    }
    throw kernelError(`Cannot rename "${tmp}" to "${ifname}"`, err);
  }
  return cont.requireLink(ifname);
}

/** What {@linkcode createVeth} needs. */
export interface VethRequest {
  host: Netlink;
  cont: Netlink;
  contNs: NetNs;
  ifname: string;
  netnsPath: string;
  mtu?: number;
  mac?: string;
  /** IFLA_GROUP for the container end (the meta-plugin's per-pod link group). */
  group?: number;
}

/**
 * Creates a veth pair from the host side with its container end directly in the container
 * netns under a temporary name, then renames it to CNI_IFNAME there. The host end is named
 * `veth` + 8 hex chars; a name clash with an existing host link is retried.
 *
 * @returns the host end and the container end as the kernel reports them
 * @throws {CniError} 105 when CNI_IFNAME exists in the container, 101 on kernel failures
 */
export function createVeth(r: VethRequest): { host: LinkInfo; cont: LinkInfo } {
  requireFreeIfname(r.cont, r.ifname, r.netnsPath);
  const tmp = tempLinkName();
  for (let attempt = 0;; attempt++) {
    const name = randomVethName();
    try {
      r.host.addVeth({
        name,
        peerName: tmp,
        peerNs: r.contNs,
        mtu: r.mtu,
        peerMac: r.mac,
        peerGroup: r.group,
      });
    } catch (err) {
      if (isKind(err, "exists") && attempt < 10 && r.host.getLink(name)) continue;
      throw kernelError(`Cannot create a veth pair for "${r.ifname}"`, err);
    }
    try {
      const cont = renameInContainer(r.cont, tmp, r.ifname);
      return { host: r.host.requireLink(name), cont };
    } catch (err) {
      deleteLinkIfExists(r.host, name);
      throw err;
    }
  }
}
