/**
 * Helpers for the IPAM unit tests: a hand-built DelegateContext and a conf builder.
 *
 * @module
 */
import type { CniResult } from "../../../conf/types.ts";
import type { DelegateContext } from "../../types.ts";

/** A DelegateContext for `containerId`/`ifname` over the conf object `raw`. */
export function ctxFor(
  raw: Record<string, unknown>,
  containerId = "ppctr",
  ifname = "eth0",
  cniArgs: Record<string, string> = {},
  prevResult?: CniResult,
): DelegateContext {
  const ctx: DelegateContext = {
    env: { containerId, ifname, netns: "", path: [] },
    cniArgs: new Map(Object.entries(cniArgs)),
    raw,
    ipam: () => Promise.reject(new Error("not used by IPAM tests")),
    ipamTraits: () => Promise.resolve({}),
  };
  if (prevResult) ctx.prevResult = prevResult;
  return ctx;
}

/** A host-local network conf with the given `ipam` fields. */
export function hostLocalRaw(
  ipam: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return { cniVersion: "1.0.0", name: "ppnet", ...extra, ipam: { type: "host-local", ...ipam } };
}
