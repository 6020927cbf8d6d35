/**
 * The bridge's `vlan`, `vlanTrunk` and `preserveDefaultVlan` (reference bridge.go: setupBridge
 * turns VLAN filtering on, setupVeth gives the host veth its VLANs): the plan of port VLAN
 * requests, computed apart from the kernel so it can be tested without one, and the kernel
 * calls that carry it out.
 *
 * A kernel built without CONFIG_BRIDGE_VLAN_FILTERING refuses both the bridge switch and the
 * port VLANs with EOPNOTSUPP; ADD then fails with code 2 naming the field that asked for it.
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import type { BridgeVlanOptions, LinkInfo, LinkRef } from "../../ffi/mod.ts";
import type { BridgeConf } from "./_bridge_conf.ts";
import { isKind, kernelError } from "../_shared/link_common.ts";

/** The bridge's VLAN every new port joins as PVID, untagged (the kernel's default_pvid). */
export const DEFAULT_VLAN = 1;

/** The part of Netlink the VLAN steps use (so tests can record them). */
export interface VlanNetlink {
  setBridgeVlanFiltering(bridge: LinkRef, on: boolean): void;
  bridgeVlanAdd(port: LinkRef, o: BridgeVlanOptions): void;
  bridgeVlanDel(port: LinkRef, vid: number, o?: { self?: boolean }): void;
}

/** One port VLAN request of the plan. */
export type PortVlanStep =
  | { op: "del"; vid: number }
  | { op: "add"; vid: number; pvid: boolean; untagged: boolean };

/** The field that asks for VLAN filtering (`vlan` or `vlanTrunk`), or undefined for none. */
export function vlanField(c: BridgeConf): "vlan" | "vlanTrunk" | undefined {
  if (c.vlan) return "vlan";
  if (c.vlanTrunk.length > 0) return "vlanTrunk";
  return undefined;
}

/**
 * The port VLAN requests for the host veth, in the reference's order: the default VLAN
 * removed first unless `preserveDefaultVlan` (so the port carries only what was asked), then
 * `vlan` as PVID and untagged (an access port), or each `vlanTrunk` id tagged (a trunk).
 */
export function portVlanPlan(c: BridgeConf): PortVlanStep[] {
  if (!vlanField(c)) return [];
  const steps: PortVlanStep[] = [];
  // The reference removes every VLAN listed on the fresh port; a just-enslaved port holds
  // only the bridge's default PVID, which is VLAN 1 unless an admin changed default_pvid.
  if (!c.preserveDefaultVlan) steps.push({ op: "del", vid: DEFAULT_VLAN });
  if (c.vlan) steps.push({ op: "add", vid: c.vlan, pvid: true, untagged: true });
  for (const vid of c.vlanTrunk) steps.push({ op: "add", vid, pvid: false, untagged: false });
  return steps;
}

/** The code 2 error for a kernel without bridge VLAN filtering, naming the field set. */
export function vlanUnsupported(c: BridgeConf, err: unknown): CniError {
  const field = vlanField(c) ?? "vlan";
  return new CniError(
    Code.UnsupportedField,
    `Field "${field}" needs bridge VLAN filtering, which this kernel does not support`,
    err instanceof Error ? err.message : String(err),
    { cause: err },
  );
}

/** Maps a kernel failure of a VLAN step: "notsupported" is code 2, the rest code 101. */
function vlanError(c: BridgeConf, action: string, err: unknown): CniError {
  return isKind(err, "notsupported") ? vlanUnsupported(c, err) : kernelError(action, err);
}

/**
 * Turns VLAN filtering on for a bridge that already existed (one created by this ADD got it at
 * creation). It is not turned off again on failure: other ports' VLANs may depend on it.
 *
 * @throws {CniError} code 2 when the kernel has no bridge VLAN filtering, 101 otherwise
 */
export function enableVlanFiltering(nl: VlanNetlink, br: LinkInfo, c: BridgeConf): void {
  try {
    nl.setBridgeVlanFiltering(br.index, true);
  } catch (err) {
    throw vlanError(c, `Cannot turn on VLAN filtering of bridge "${br.name}"`, err);
  }
}

/**
 * Gives the host veth (already a port of the bridge) its VLANs, as {@linkcode portVlanPlan}.
 * The undo of the ADD deletes the veth, which takes its VLANs with it.
 *
 * @throws {CniError} code 2 when the kernel has no bridge VLAN filtering, 101 otherwise
 */
export function applyPortVlans(nl: VlanNetlink, port: LinkInfo, c: BridgeConf): void {
  for (const s of portVlanPlan(c)) {
    try {
      if (s.op === "del") nl.bridgeVlanDel(port.index, s.vid);
      else nl.bridgeVlanAdd(port.index, { vid: s.vid, pvid: s.pvid, untagged: s.untagged });
    } catch (err) {
      const what = s.op === "del" ? `remove VLAN ${s.vid} from` : `add VLAN ${s.vid} to`;
      throw vlanError(c, `Cannot ${what} "${port.name}"`, err);
    }
  }
}

/**
 * The reference puts a `vlan` network's gateway address not on the bridge but on a veth
 * `<bridge>.<vlan>` whose peer is an access port of that VLAN (ensureVlanInterface), and
 * lists it in the result. podplex does not build that yet; putting the address on the bridge
 * instead would give a gateway the pods cannot reach, so the combination is refused. Called
 * after the bridge's VLAN filtering step, so a kernel without it still answers first.
 *
 * @throws {CniError} code 2 for `vlan` with `isGateway` and IPAM
 */
export function requireVlanGateway(c: BridgeConf): void {
  if (c.vlan && c.isGateway && c.ipamType) {
    throw new CniError(
      Code.UnsupportedField,
      `Field "vlan" with "isGateway" is not supported by this podplex build`,
      `the reference's "${c.bridge}.${c.vlan}" gateway interface is not implemented`,
    );
  }
}
