/**
 * The built-in `macvlan` delegate, as the reference plugin (plugins/main/macvlan): a macvlan
 * child of `master` created directly in the container netns under a temporary name, then
 * renamed to CNI_IFNAME there. The flow it shares with ipvlan is in `../_shared/child.ts`.
 *
 * @module
 */
import type { BuiltinDelegate } from "../types.ts";
import { requestedMac } from "../_shared/conf_read.ts";
import { ipamAddWithUndo } from "../_shared/iface.ts";
import type { HostOptions } from "../_shared/link_common.ts";
import { type ChildConf, type ChildKind, makeChildDelegate } from "../_shared/child.ts";

/** The parsed `macvlan` config. */
export interface MacvlanConf extends ChildConf {
  mode: "bridge" | "private" | "vepa" | "passthru";
}

const MODES = ["bridge", "private", "vepa", "passthru"] as const;

const macvlanKind: ChildKind<MacvlanConf> = {
  kind: "macvlan",
  create(nl, c, ctx, name, master, ns) {
    const mac = requestedMac(c.raw, ctx, "mac");
    nl.addMacvlan({ name, master, mode: c.mode, mtu: c.mtu, mac, group: ctx.linkGroup, ns });
  },
  async l3(c, ctx, undo) {
    if (!c.ipamType) return undefined;
    return await ipamAddWithUndo(ctx, undo);
  },
};

/** Builds a macvlan delegate whose host side lives in `opts.hostNs` (tests) or here. */
export function makeMacvlan(opts: HostOptions = {}): BuiltinDelegate<MacvlanConf> {
  return makeChildDelegate(macvlanKind, MODES, opts);
}

/** The built-in `macvlan` delegate. */
export const macvlan: BuiltinDelegate<MacvlanConf> = makeMacvlan();
