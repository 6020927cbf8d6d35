/**
 * The built-in `dhcp` IPAM delegate, configured as the reference plugin (plugins/ipam/dhcp):
 * it asks the lease keeper of `podplex serve` (at `ipam.daemonSocketPath`, else beside the
 * call's PODPLEX_SOCKET, then at `/run/podplex/dhcp.sock`) to obtain a lease on CNI_IFNAME inside CNI_NETNS, keep it, and
 * release it on DEL, and builds the reference's result from the ACK (plus `dns`).
 *
 * Without a daemon ADD fails with code 11 saying so; DEL then succeeds (nothing can be held
 * that no daemon keeps, and a record left by a dead daemon is dropped by the next one once
 * the link is gone). Its DEL needs the link to still exist (the DHCPRELEASE goes out on it):
 * see {@linkcode dhcpIpam}'s `traits`.
 *
 * @module
 */
import { CniError, Code } from "../../../conf/errors.ts";
import { validAttachments } from "../../../conf/gc.ts";
import { resolveIn } from "../../../conf/paths.ts";
import type { CniResult } from "../../../conf/types.ts";
import type { BuiltinDelegate, DelegateContext } from "../../types.ts";
import { clientId, type DhcpConf, keeperSockets, parseDhcpConf, requestOptions } from "./conf.ts";
import { decodeMessage, leaseOptions } from "./message.ts";
import { callKeeper, type KeeperAnswer, type KeeperRequest, NoKeeperError } from "./protocol.ts";
import { fromHex, toHex } from "./_hex.ts";
import { leaseResult } from "./result.ts";

function idOf(conf: DhcpConf, ctx: DelegateContext): string {
  return clientId(ctx.env.containerId ?? "", conf.name, ctx.env.ifname ?? "");
}

/** The keeper may run in another working directory: the netns path must be absolute. */
function absoluteNetns(env: DelegateContext["env"]): string {
  if (!env.netns) throw new CniError(Code.InvalidEnv, `The dhcp IPAM needs CNI_NETNS`);
  return resolveIn(env.cwd ?? Deno.cwd(), env.netns);
}

/**
 * Asks the first keeper that answers of {@linkcode keeperSockets}: a daemon started on a
 * socket of its own keeps its leases beside it, and a per-call run must find them there.
 *
 * @throws {NoKeeperError} the last one's, when none answers
 */
async function askKeeper(
  conf: DhcpConf,
  ctx: Pick<DelegateContext, "env">,
  req: KeeperRequest,
): Promise<KeeperAnswer> {
  const sockets = keeperSockets(conf, ctx.env.daemonSocket);
  for (let i = 0;; i++) {
    try {
      return await callKeeper(sockets[i], req);
    } catch (e) {
      if (!(e instanceof NoKeeperError) || i === sockets.length - 1) throw e;
    }
  }
}

/** ADD: a lease from the keeper, as the reference's result (ips, routes) plus dns. */
export async function dhcpAdd(conf: DhcpConf, ctx: DelegateContext): Promise<CniResult> {
  const options = [...requestOptions(conf, ctx.cniArgs)].map(([k, v]) =>
    [k, toHex(v)] as [number, string]
  );
  const answer = await askKeeper(conf, ctx, {
    op: "add",
    clientId: idOf(conf, ctx),
    containerId: ctx.env.containerId ?? "",
    netName: conf.name,
    ifname: ctx.env.ifname ?? "",
    netns: absoluteNetns(ctx.env),
    options,
  });
  if (!answer.ok || !answer.ack || !answer.address) {
    throw new CniError(Code.DelegateFailed, `The lease keeper returned no lease`);
  }
  return leaseResult(
    answer.address,
    leaseOptions(decodeMessage(fromHex(answer.ack))),
    conf.priority,
  );
}

/** DEL: the keeper releases the lease (DHCPRELEASE on the still existing link). */
export async function dhcpDel(conf: DhcpConf, ctx: DelegateContext): Promise<void> {
  try {
    await askKeeper(conf, ctx, { op: "del", clientId: idOf(conf, ctx) });
  } catch (e) {
    // No daemon: no lease can be held (see the module doc); DEL stays idempotent.
    if (!(e instanceof NoKeeperError)) throw e;
  }
}

/** CHECK: the keeper holds a current lease whose address is on the interface. */
export async function dhcpCheck(conf: DhcpConf, ctx: DelegateContext): Promise<void> {
  await askKeeper(conf, ctx, { op: "check", clientId: idOf(conf, ctx) });
}

/** STATUS: the keeper answers (code 50 otherwise). */
export async function dhcpStatus(conf: DhcpConf, ctx: DelegateContext): Promise<void> {
  try {
    await askKeeper(conf, ctx, { op: "status" });
  } catch (e) {
    const err = CniError.wrap(e);
    throw new CniError(Code.NotAvailable, err.message, err.details, { cause: e });
  }
}

/** GC: the keeper releases this network's leases whose attachment is not valid. */
export async function dhcpGc(conf: DhcpConf, ctx: DelegateContext): Promise<void> {
  const valid = validAttachments(ctx.raw).map((a) => ({
    containerId: a.containerID.trim(),
    ifname: a.ifname,
  }));
  try {
    await askKeeper(conf, ctx, { op: "gc", netName: conf.name, valid });
  } catch (e) {
    if (!(e instanceof NoKeeperError)) throw e;
  }
}

/** The `dhcp` IPAM delegate. */
export const dhcpIpam: BuiltinDelegate<DhcpConf> = {
  type: "dhcp",
  traits: { delNeedsLink: true },
  parseConf: parseDhcpConf,
  add: dhcpAdd,
  del: dhcpDel,
  check: dhcpCheck,
  status: dhcpStatus,
  gc: dhcpGc,
};
