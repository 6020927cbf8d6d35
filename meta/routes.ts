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

/** The attachments asking for a default route, with their gateways. */
function askers(atts: PlannedAttachment[]): Array<{ index: number; gws: string[] }> {
  return atts.flatMap((a, index) => {
    const gws = a.selection?.defaultRoute ?? [];
    return gws.length ? [{ index, gws }] : [];
  });
}

function isDefaultOf(dst: string, families: Set<number>): boolean {
  const fam = ipFamily(dst.split("/")[0]);
  return dst === DEFAULT_DST[fam] && families.has(fam);
}

/**
 * Applies the `default-route` requests of every attachment of `atts` that asks (the plan
 * allows one gateway per family across the pod) in the netns: the default routes of those
 * families go, then each asker's gateways are added over its interface. `results[i]` belongs
 * to `atts[i]` and is updated in place. Does nothing (and touches no FFI) when none asks.
 *
 * @throws {CniError} code 101 when the routes cannot be changed
 */
export function applyDefaultRoutes(
  netns: string,
  atts: PlannedAttachment[],
  results: CniResult[],
): void {
  const asking = askers(atts);
  if (asking.length === 0) return;
  const families = new Set(asking.flatMap((a) => a.gws.map((g) => ipFamily(g))));
  let current = asking[0].index;
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
    for (const { index, gws } of asking) {
      current = index;
      const dev = nl.requireLink(atts[index].ifname).index;
      for (const gw of gws) nl.addRoute({ dst: DEFAULT_DST[ipFamily(gw)], gw, dev });
    }
  } catch (e) {
    throw CniError.wrap(
      e,
      Code.KernelFailure,
      `Cannot set the default route over "${atts[current].ifname}"`,
    );
  }
  results.forEach((res, i) => {
    const keep = (res.routes ?? []).filter((r) => !isDefaultOf(r.dst, families));
    for (const gw of asking.find((a) => a.index === i)?.gws ?? []) {
      keep.push({ dst: DEFAULT_DST[ipFamily(gw)], gw });
    }
    res.routes = keep;
  });
}
