/**
 * The built-in `ipvlan` delegate, as the reference plugin (plugins/main/ipvlan): an ipvlan
 * child of `master` in mode l2/l3/l3s, created in the container netns under a temporary name
 * and renamed. Chained without `master`, the master is the single interface of prevResult;
 * chained without `ipam`, the addresses of prevResult are applied.
 *
 * The kernel of the development machine lacks the ipvlan module: creating the link then
 * fails with a KernelFailure whose cause is a NetlinkError of kind "notsupported".
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import type { BuiltinDelegate, DelegateContext } from "../types.ts";
import type { HostOptions } from "../_shared/link_common.ts";
import { ipamAddWithUndo } from "../_shared/iface.ts";
import { type ChildConf, type ChildKind, makeChildDelegate } from "../_shared/child.ts";

/** The parsed `ipvlan` config. */
export interface IpvlanConf extends ChildConf {
  mode: "l2" | "l3" | "l3s";
}

const MODES = ["l2", "l3", "l3s"] as const;

/**
 * The master of a chained ipvlan without `master`: the single named interface of prevResult.
 *
 * @throws {CniError} code 7 when prevResult does not have exactly one named interface
 */
export function chainedMaster(c: IpvlanConf, ctx: DelegateContext): IpvlanConf {
  if (c.master || !ctx.prevResult) return c;
  const ifs = ctx.prevResult.interfaces ?? [];
  if (ifs.length !== 1 || !ifs[0].name) {
    throw new CniError(
      Code.InvalidConfig,
      `Invalid "master": not set, and prevResult lacks a single named interface to use`,
    );
  }
  return { ...c, master: ifs[0].name };
}

const ipvlanKind: ChildKind<IpvlanConf> = {
  kind: "ipvlan",
  create(nl, c, ctx, name, master, ns) {
    nl.addIpvlan({ name, master, mode: c.mode, mtu: c.mtu, group: ctx.linkGroup, ns });
  },
  async l3(c, ctx, undo) {
    // Chained without an IPAM block: apply the previous plugin's addresses (reference).
    if (!c.ipamType && ctx.prevResult?.ips?.length) return ctx.prevResult;
    return await ipamAddWithUndo(ctx, undo);
  },
};

/** Builds an ipvlan delegate whose host side lives in `opts.hostNs` (tests) or here. */
export function makeIpvlan(opts: HostOptions = {}): BuiltinDelegate<IpvlanConf> {
  return makeChildDelegate(ipvlanKind, MODES, opts, chainedMaster);
}

/** The built-in `ipvlan` delegate. */
export const ipvlan: BuiltinDelegate<IpvlanConf> = makeIpvlan();
