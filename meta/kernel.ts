/**
 * The meta-plugin's own kernel work through `ffi/` (the default `MetaKernel`): deleting a
 * pod's link group. Loaded only by the verbs that need it.
 *
 * @module
 */
import { Netlink, NetNs } from "../ffi/mod.ts";

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
