/**
 * GC and STATUS of a main plugin that delegates addresses: the verb goes to its IPAM, with
 * the same conf (spec 1.1: a plugin forwards GC and STATUS to the plugins it delegates to).
 * The reference 1.1 plugins forward STATUS this way; their GC is still a FIXME, so a
 * bridge + host-local GC there releases nothing. Here the IPAM's GC runs, and host-local
 * releases every lease whose attachment is not in `cni.dev/valid-attachments`.
 *
 * @module
 */
import type { DelegateContext } from "../types.ts";

/**
 * Runs `command` on the conf's IPAM; does nothing for an L2-only conf (no `ipam.type`).
 *
 * @throws {CniError} the IPAM's error (STATUS: 50/51 when it is not ready)
 */
export async function forwardToIpam(
  ipamType: string | undefined,
  ctx: DelegateContext,
  command: "GC" | "STATUS",
): Promise<void> {
  if (ipamType) await ctx.ipam(command);
}
