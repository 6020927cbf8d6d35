/**
 * `macspoofchk` of the bridge delegate, as the reference (containernetworking/plugins
 * pkg/link/spoofcheck.go): in the nftables table `bridge nat`, a base chain `PREROUTING`
 * (filter hook prerouting, priority -300, policy accept) jumps for frames entering from the
 * pod's host veth to `cni-br-iface-<id>`, which jumps to `cni-br-iface-<id>-mac`: frames
 * whose Ethernet source is the container's MAC return, every other frame is dropped. Each
 * rule carries the comment `macspoofchk-<id>`; `<id>` is `<containerID>-<ifname>`.
 *
 * Rules are fed to `nft -j -f -` as JSON, so no container id or name is ever parsed as nft
 * syntax. DEL removes the jump rule and both per-pod chains; the table and base chain stay
 * for other pods, as in the reference.
 *
 * @module
 */
import { fw } from "./fw.ts";
import type { HostOptions } from "./link_common.ts";

const FAMILY = "bridge";
const TABLE = "nat";
const BASE_CHAIN = "PREROUTING";

/** The names the rules of one attachment use. */
export interface SpoofchkNames {
  /** `cni-br-iface-<id>`: entered from the base chain for the pod's host veth. */
  ifaceChain: string;
  /** `cni-br-iface-<id>-mac`: the MAC match and the drop. */
  macChain: string;
  /** `macspoofchk-<id>`: the comment on every rule. */
  comment: string;
}

/** The reference's chain names and comment for container `containerId`, interface `ifname`. */
export function spoofchkNames(containerId: string, ifname: string): SpoofchkNames {
  const id = `${containerId}-${ifname}`;
  return {
    ifaceChain: `cni-br-iface-${id}`,
    macChain: `cni-br-iface-${id}-mac`,
    comment: `macspoofchk-${id}`,
  };
}

type NftCommand = Record<string, unknown>;

const chain = (name: string, extra: object = {}) => ({
  chain: { family: FAMILY, table: TABLE, name, ...extra },
});

function rule(chainName: string, comment: string, expr: unknown[]): NftCommand {
  return { add: { rule: { family: FAMILY, table: TABLE, chain: chainName, expr, comment } } };
}

async function nftApply(opts: HostOptions, commands: NftCommand[]): Promise<void> {
  await fw(opts, "nft", ["-j", "-f", "-"], true, JSON.stringify({ nftables: commands }));
}

/**
 * Declares the table and the three chains (a no-op for those that exist), then in a second
 * transaction flushes the per-pod chains and adds the rules: as the reference, two
 * transactions because a flush fails on a chain that does not exist yet.
 *
 * @param hostIface the pod's host-side veth
 * @param mac the container interface's MAC (the only source MAC allowed in)
 * @throws {CniError} 101 quoting nft's error
 */
export async function setupSpoofchk(
  opts: HostOptions,
  names: SpoofchkNames,
  hostIface: string,
  mac: string,
): Promise<void> {
  const base = { type: "filter", hook: "prerouting", prio: -300, policy: "accept" };
  await nftApply(opts, [
    { add: { table: { family: FAMILY, name: TABLE } } },
    { add: chain(BASE_CHAIN, base) },
    { add: chain(names.ifaceChain) },
    { add: chain(names.macChain) },
  ]);
  const ifaceMatch = { match: { op: "==", left: { meta: { key: "iifname" } }, right: hostIface } };
  const macMatch = {
    match: { op: "==", left: { payload: { protocol: "ether", field: "saddr" } }, right: mac },
  };
  await nftApply(opts, [
    { flush: chain(names.ifaceChain) },
    { flush: chain(names.macChain) },
    rule(BASE_CHAIN, names.comment, [ifaceMatch, { jump: { target: names.ifaceChain } }]),
    rule(names.ifaceChain, names.comment, [{ jump: { target: names.macChain } }]),
    rule(names.macChain, names.comment, [macMatch, { return: null }]),
    rule(names.macChain, names.comment, [{ drop: null }]),
  ]);
}

/** One object of `nft -j list table` output. */
type NftObject = {
  chain?: { name: string };
  rule?: { chain: string; handle: number; comment?: string };
};

/** The `bridge nat` table as nft lists it; empty when it (or nft) is missing. */
async function listTable(opts: HostOptions): Promise<NftObject[]> {
  const text = await fw(opts, "nft", ["-j", "list", "table", FAMILY, TABLE], false);
  if (!text.trim()) return [];
  return (JSON.parse(text) as { nftables: NftObject[] }).nftables;
}

/**
 * Removes the base chain's jump rule(s) for this attachment and both per-pod chains, in one
 * transaction. What is already gone is fine (DEL is idempotent).
 *
 * @throws {CniError} 101 when nft refuses the deletion
 */
export async function teardownSpoofchk(opts: HostOptions, names: SpoofchkNames): Promise<void> {
  const objects = await listTable(opts);
  const commands: NftCommand[] = objects
    .filter((o) => o.rule?.chain === BASE_CHAIN && o.rule.comment === names.comment)
    .map((o) => ({
      delete: { rule: { family: FAMILY, table: TABLE, chain: BASE_CHAIN, handle: o.rule!.handle } },
    }));
  // The iface chain first: its jump is what still references the mac chain.
  for (const name of [names.ifaceChain, names.macChain]) {
    if (objects.some((o) => o.chain?.name === name)) commands.push({ delete: chain(name) });
  }
  if (commands.length) await nftApply(opts, commands);
}
