/**
 * The meta-plugin's own kernel work through `ffi/` (the default `MetaKernel`): deleting a
 * pod's link group, or the strays of an interrupted hot-plug in it. Loaded only by the verbs
 * that need it.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { Netlink, NetlinkError, NetNs } from "../ffi/mod.ts";

/**
 * Fails unless `netns` is a network namespace that exists.
 *
 * @throws {CniError} 3 when it does not exist, 8 when it is not a network namespace
 */
export function requireNetns(netns: string): void {
  try {
    NetNs.open(netns).close();
  } catch (e) {
    const kind = e instanceof NetlinkError ? e.kind : "other";
    if (kind === "notfound") {
      throw new CniError(
        Code.UnknownContainer,
        `Cannot open CNI_NETNS "${netns}": it does not exist`,
      );
    }
    if (kind === "notnetns") {
      throw new CniError(
        Code.InvalidNetNS,
        `Invalid CNI_NETNS "${netns}": not a network namespace`,
      );
    }
    throw CniError.wrap(e, Code.KernelFailure, `Cannot open CNI_NETNS "${netns}"`);
  }
}

/**
 * Deletes every link of `group` in the netns at `netns` with one RTM_DELLINK. A netns that
 * is gone (or is not a netns) has nothing left to delete.
 *
 * @throws {Error} the kernel's answer when the delete itself fails
 */
export async function deleteLinkGroup(netns: string, group: number): Promise<void> {
  try {
    await Deno.lstat(netns);
  } catch {
    return; // the netns is gone, and its links with it
  }
  let ns;
  try {
    ns = NetNs.open(netns);
  } catch {
    return;
  }
  try {
    const nl = Netlink.open(ns);
    try {
      await nl.deleteGroupAsync(group);
    } finally {
      nl.close();
    }
  } finally {
    ns.close();
  }
}

/**
 * Deletes the links of `group` in the netns at `netns` whose names are not in `keep`: what a
 * podplex killed in the middle of creating a link left (a veth's container end still under
 * its temporary name). A netns that is gone has none.
 *
 * @returns the names deleted
 */
export function deleteStrayLinks(netns: string, group: number, keep: readonly string[]): string[] {
  let ns;
  try {
    ns = NetNs.open(netns);
  } catch {
    return [];
  }
  const deleted: string[] = [];
  try {
    const nl = Netlink.open(ns);
    try {
      for (const l of nl.listLinks()) {
        if (l.group !== group || keep.includes(l.name)) continue;
        try {
          nl.deleteLink(l.index);
          deleted.push(l.name);
        } catch { /* gone meanwhile */ }
      }
    } finally {
      nl.close();
    }
  } finally {
    ns.close();
  }
  return deleted;
}
