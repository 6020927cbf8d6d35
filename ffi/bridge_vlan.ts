/**
 * Bridge VLAN filtering: switching it on an existing bridge, and adding or removing VLANs
 * on a bridge port (what `ip link set BR type bridge vlan_filtering 1` and
 * `bridge vlan add|del dev PORT vid N [pvid] [untagged] [self]` send).
 *
 * A kernel built without CONFIG_BRIDGE_VLAN_FILTERING answers EOPNOTSUPP to the first two
 * (kind "notsupported"); it accepts a VLAN delete and does nothing.
 *
 * @module
 */
import { NLM_F } from "./_msg.ts";
import type { NlSocket } from "./_socket.ts";
import { IFLA, IFLA_INFO, linkMsg, type LinkRef, refText, requireIndex, RTM } from "./link.ts";

const AF_BRIDGE = 7;
/** IFLA_AF_SPEC (linux/if_link.h): per address family attributes; AF_BRIDGE's below. */
export const IFLA_AF_SPEC = 26;
/** IFLA_BR_VLAN_FILTERING inside IFLA_INFO_DATA of a bridge (u8). */
export const IFLA_BR_VLAN_FILTERING = 7;
/** The attributes inside IFLA_AF_SPEC of an AF_BRIDGE message (linux/if_bridge.h). */
export const IFLA_BRIDGE = { FLAGS: 0, MODE: 1, VLAN_INFO: 2 } as const;
/** IFLA_BRIDGE_FLAGS values: which side the request is for (the port's bridge or the port). */
export const BRIDGE_FLAGS = { MASTER: 1, SELF: 2 } as const;
/** struct bridge_vlan_info flags. */
export const BRIDGE_VLAN_INFO = { MASTER: 1, PVID: 2, UNTAGGED: 4 } as const;

/** Options of {@linkcode bridgeVlanAdd}. */
export interface BridgeVlanOptions {
  /** VLAN id, 1 to 4094. */
  vid: number;
  /** Untagged frames entering the port get this VLAN (at most one PVID per port). */
  pvid?: boolean;
  /** Frames of this VLAN leave the port untagged. */
  untagged?: boolean;
  /**
   * The VLAN is for the device itself (a bridge's own VLANs: `bridge vlan add ... self`),
   * not for the port as seen by its master bridge.
   */
  self?: boolean;
}

/** Refuses a VLAN id the kernel would refuse anyway, before anything is sent. */
function checkVid(vid: number): void {
  if (!Number.isInteger(vid) || vid < 1 || vid > 4094) {
    throw new RangeError(`Invalid VLAN id ${vid}: only 1 to 4094`);
  }
}

/** struct bridge_vlan_info { u16 flags; u16 vid; } in host order. */
function vlanInfo(flags: number, vid: number): Uint8Array {
  const b = new Uint8Array(4);
  const v = new DataView(b.buffer);
  v.setUint16(0, flags, true);
  v.setUint16(2, vid, true);
  return b;
}

/** Sends one AF_BRIDGE RTM_SETLINK (add) or RTM_DELLINK (delete) for one port VLAN. */
function portVlan(
  sock: NlSocket,
  type: number,
  op: string,
  port: LinkRef,
  o: BridgeVlanOptions,
): void {
  checkVid(o.vid);
  const index = typeof port === "number" ? port : requireIndex(sock, port, op);
  const w = linkMsg(type, NLM_F.ACK, index, { family: AF_BRIDGE });
  w.begin(IFLA_AF_SPEC);
  // Without flags the kernel applies the request to the port's master (the bridge's view
  // of the port), which is what a port VLAN is; SELF targets the device itself.
  if (o.self) w.u16(IFLA_BRIDGE.FLAGS, BRIDGE_FLAGS.SELF);
  let flags = 0;
  if (o.pvid) flags |= BRIDGE_VLAN_INFO.PVID;
  if (o.untagged) flags |= BRIDGE_VLAN_INFO.UNTAGGED;
  w.bytes(IFLA_BRIDGE.VLAN_INFO, vlanInfo(flags, o.vid));
  w.end();
  sock.request(op, w);
}

/**
 * Adds a VLAN to a bridge port (or, with `self`, to a bridge itself).
 *
 * @throws {RangeError} for a VLAN id outside 1 to 4094 (nothing is sent)
 * @throws {NetlinkError} kind "notsupported" when the kernel has no bridge VLAN filtering
 */
export function bridgeVlanAdd(sock: NlSocket, port: LinkRef, o: BridgeVlanOptions): void {
  const extra = `${o.pvid ? " pvid" : ""}${o.untagged ? " untagged" : ""}${o.self ? " self" : ""}`;
  const op = `add VLAN ${o.vid}${extra} on ${refText(port)}`;
  portVlan(sock, RTM.SETLINK, op, port, o);
}

/**
 * Removes a VLAN from a bridge port (or, with `self`, from a bridge itself).
 *
 * @throws {RangeError} for a VLAN id outside 1 to 4094 (nothing is sent)
 */
export function bridgeVlanDel(
  sock: NlSocket,
  port: LinkRef,
  vid: number,
  o: { self?: boolean } = {},
): void {
  const op = `remove VLAN ${vid}${o.self ? " self" : ""} from ${refText(port)}`;
  portVlan(sock, RTM.DELLINK, op, port, { vid, self: o.self });
}

/**
 * Turns VLAN filtering on or off on an existing bridge: an RTM_NEWLINK without CREATE on its
 * ifindex, with IFLA_LINKINFO {KIND "bridge", DATA {IFLA_BR_VLAN_FILTERING}} (the kernel
 * checks the kind matches, then applies the bridge's changelink).
 *
 * @throws {NetlinkError} kind "notsupported" when the kernel has no bridge VLAN filtering
 */
export function setBridgeVlanFiltering(sock: NlSocket, bridge: LinkRef, on: boolean): void {
  const op = `turn ${on ? "on" : "off"} VLAN filtering of bridge ${refText(bridge)}`;
  const index = typeof bridge === "number" ? bridge : requireIndex(sock, bridge, op);
  const w = linkMsg(RTM.NEWLINK, NLM_F.ACK, index);
  w.begin(IFLA.LINKINFO).str(IFLA_INFO.KIND, "bridge");
  w.begin(IFLA_INFO.DATA).u8(IFLA_BR_VLAN_FILTERING, on ? 1 : 0).end();
  w.end();
  sock.request(op, w);
}
