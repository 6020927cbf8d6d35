/**
 * The built-in `loopback` delegate, as the reference plugin: ADD brings `lo` up in the
 * container netns and reports its loopback addresses (or passes a prevResult through); DEL
 * brings it down (a missing netns is fine); CHECK fails when it is down.
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import { parseCidr } from "../../conf/ip.ts";
import type { CniResult } from "../../conf/types.ts";
import type { BuiltinDelegate, DelegateContext } from "../types.ts";
import { Netlink } from "../../ffi/mod.ts";
import { checkFailed } from "../_shared/check.ts";
import { kernelError, openContainerNs, tryOpenNs } from "../_shared/link_common.ts";

/** The loopback delegate takes no fields of its own. */
export type LoopbackConf = Record<string, unknown>;

const IFF_UP = 0x1;

/** Whether an address (text) is a loopback address: 127.0.0.0/8 or ::1. */
function isLoopback(cidr: string): boolean {
  const c = parseCidr(cidr);
  return c.family === 4 ? c.ip.value >> 24n === 127n : c.ip.value === 1n;
}

/** The first address of `lo` per family, after checking they are all loopback addresses. */
function loopbackAddrs(nl: Netlink, index: number): string[] {
  const out: string[] = [];
  for (const fam of [4, 6] as const) {
    const addrs = nl.listAddrs(index, fam);
    for (const a of addrs) {
      if (!isLoopback(a.cidr)) {
        throw new CniError(
          Code.KernelFailure,
          `Loopback interface found with non-loopback address "${a.address}"`,
        );
      }
    }
    if (addrs.length) out.push(addrs[0].cidr);
  }
  return out;
}

async function add(_c: LoopbackConf, ctx: DelegateContext): Promise<CniResult> {
  using ns = openContainerNs(ctx.env.netns);
  using nl = Netlink.open(ns);
  let addrs: string[];
  try {
    const lo = nl.requireLink("lo");
    nl.setUp(lo.index);
    addrs = loopbackAddrs(nl, lo.index);
  } catch (err) {
    throw kernelError(`Cannot set "lo" up in netns "${ctx.env.netns}"`, err);
  }
  // The reference passes a previous plugin's result through unchanged.
  if (ctx.prevResult) return ctx.prevResult;
  return await Promise.resolve({
    cniVersion: "1.1.0",
    interfaces: [{ name: "lo", mac: "00:00:00:00:00:00", sandbox: ctx.env.netns }],
    ips: addrs.map((address) => ({ interface: 0, address })),
  });
}

async function del(_c: LoopbackConf, ctx: DelegateContext): Promise<void> {
  using ns = tryOpenNs(ctx.env.netns);
  if (!ns) return;
  using nl = Netlink.open(ns);
  try {
    const lo = nl.getLink("lo");
    if (lo) nl.setDown(lo.index);
  } catch (err) {
    throw kernelError(`Cannot set "lo" down in netns "${ctx.env.netns}"`, err);
  }
  await Promise.resolve();
}

async function check(_c: LoopbackConf, ctx: DelegateContext): Promise<void> {
  using ns = openContainerNs(ctx.env.netns);
  using nl = Netlink.open(ns);
  const lo = nl.getLink("lo");
  if (!lo) throw checkFailed(`Loopback interface not found in netns "${ctx.env.netns}"`);
  if ((lo.flags & IFF_UP) === 0) throw checkFailed("Loopback interface is down");
  await Promise.resolve();
}

/** The built-in `loopback` delegate. */
export const loopback: BuiltinDelegate<LoopbackConf> = {
  type: "loopback",
  parseConf: (raw) => raw,
  add,
  del,
  check,
};
