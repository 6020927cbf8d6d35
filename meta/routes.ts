/**
 * Multus's `default-route`: a pod that asks for its default route over a secondary network
 * gets it there, and the other attachments' default routes of that family are removed —
 * from the netns and from their results, so CHECK and network-status agree with the kernel.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { ipFamily } from "../conf/result.ts";
import type { CniResult } from "../conf/types.ts";
import { Netlink, NetNs } from "../ffi/mod.ts";
import type { PlannedAttachment } from "./plan.ts";

const DEFAULT_DST = { 4: "0.0.0.0/0", 6: "::/0" } as const;

/**
 * Applies the `default-route` requests of `atts` in the netns; `results[i]` belongs to
 * `atts[i]` and is updated in place. Does nothing (and touches no FFI) when none asks.
 *
 * @throws {CniError} code 101 when the routes cannot be changed
 */
export function applyDefaultRoutes(
  netns: string,
  atts: PlannedAttachment[],
  results: CniResult[],
): void {
  const asking = atts.findIndex((a) => a.selection?.defaultRoute?.length);
  if (asking < 0) return;
  const gws = atts[asking].selection!.defaultRoute!;
  const families = new Set(gws.map((g) => ipFamily(g)));
  try {
    using ns = NetNs.open(netns);
    using nl = Netlink.open(ns);
    for (const fam of families) {
      for (const r of nl.listRoutes({ family: fam })) {
        if (r.dst === DEFAULT_DST[fam] && r.table === 254) {
          nl.delRoute({ dst: r.dst, gw: r.gw, dev: r.dev, table: r.table, metric: r.metric });
        }
      }
    }
    const dev = nl.requireLink(atts[asking].ifname).index;
    for (const gw of gws) nl.addRoute({ dst: DEFAULT_DST[ipFamily(gw)], gw, dev });
  } catch (e) {
    throw CniError.wrap(
      e,
      Code.KernelFailure,
      `Cannot set the default route over "${atts[asking].ifname}"`,
    );
  }
  results.forEach((res, i) => {
    const keep = (res.routes ?? []).filter((r) =>
      !(r.dst === DEFAULT_DST[ipFamily(r.dst.split("/")[0])] &&
        families.has(ipFamily(r.dst.split("/")[0])))
    );
    if (i === asking) {
      for (const gw of gws) keep.push({ dst: DEFAULT_DST[ipFamily(gw)], gw });
    }
    res.routes = keep;
  });
}
