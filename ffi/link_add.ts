/**
 * Creating links (RTM_NEWLINK with NLM_F_CREATE | NLM_F_EXCL): veth, bridge, vxlan,
 * macvlan, ipvlan, dummy. An existing name fails with kind "exists"; a kind the kernel has
 * no module for fails with kind "notsupported".
 *
 * @module
 */
import { ipBytes, macBytes } from "./_inet.ts";
import { type MsgWriter, NLM_F } from "./_msg.ts";
import type { NlSocket } from "./_socket.ts";
import { IFLA, IFLA_INFO, linkMsg, RTM } from "./link.ts";
import type { NetNs } from "./netns.ts";

const CREATE = NLM_F.CREATE | NLM_F.EXCL | NLM_F.ACK;
const VETH_INFO_PEER = 1;
const IFLA_BR_VLAN_FILTERING = 7;
const IFLA_VXLAN = {
  ID: 1,
  GROUP: 2,
  LINK: 3,
  LOCAL: 4,
  TTL: 5,
  LEARNING: 7,
  PORT: 15,
  GROUP6: 16,
  LOCAL6: 17,
} as const;
const IFLA_MACVLAN_MODE = 1;
const MACVLAN_MODES = { private: 1, vepa: 2, bridge: 4, passthru: 8 } as const;
const IFLA_IPVLAN_MODE = 1;
const IPVLAN_MODES = { l2: 0, l3: 1, l3s: 2 } as const;

/** The attributes every link may carry at creation. */
interface Common {
  mtu?: number;
  mac?: string;
  group?: number;
  ns?: NetNs;
}

/** Adds MTU, address, group and target netns attributes. */
function putCommon(w: MsgWriter, o: Common): void {
  if (o.mtu !== undefined) w.u32(IFLA.MTU, o.mtu);
  if (o.mac !== undefined) w.bytes(IFLA.ADDRESS, macBytes(o.mac));
  if (o.group !== undefined) w.u32(IFLA.GROUP, o.group);
  if (o.ns !== undefined) w.u32(IFLA.NET_NS_FD, o.ns.fd);
}

/** Starts a create request for `name` of `kind`; `data` fills IFLA_INFO_DATA when given. */
function newLink(
  name: string,
  kind: string,
  common: Common,
  data?: (w: MsgWriter) => void,
): MsgWriter {
  const w = linkMsg(RTM.NEWLINK, CREATE, name);
  putCommon(w, common);
  w.begin(IFLA.LINKINFO).str(IFLA_INFO.KIND, kind);
  if (data) {
    w.begin(IFLA_INFO.DATA);
    data(w);
    w.end();
  }
  return w.end();
}

/** Options of {@linkcode addVeth}. */
export interface VethOptions {
  name: string;
  peerName: string;
  /** Create the peer directly in this netns (no move afterwards). */
  peerNs?: NetNs;
  /** MTU of both ends. */
  mtu?: number;
  mac?: string;
  peerMac?: string;
  group?: number;
  peerGroup?: number;
}

/** Creates a veth pair: `name` in the socket's netns, `peerName` in `peerNs` (or here). */
export function addVeth(sock: NlSocket, o: VethOptions): void {
  const w = newLink(o.name, "veth", { mtu: o.mtu, mac: o.mac, group: o.group }, (w) => {
    w.begin(VETH_INFO_PEER);
    w.struct(16); // the peer's own ifinfomsg, all zero
    w.str(IFLA.IFNAME, o.peerName);
    putCommon(w, { mtu: o.mtu, mac: o.peerMac, group: o.peerGroup, ns: o.peerNs });
    w.end();
  });
  sock.request(`add veth "${o.name}" with peer "${o.peerName}"`, w);
}

/** Creates a bridge. */
export function addBridge(
  sock: NlSocket,
  o: { name: string; mtu?: number; mac?: string; vlanFiltering?: boolean },
): void {
  const data = o.vlanFiltering === undefined
    ? undefined
    : (w: MsgWriter) => w.u8(IFLA_BR_VLAN_FILTERING, o.vlanFiltering ? 1 : 0);
  sock.request(`add bridge "${o.name}"`, newLink(o.name, "bridge", o, data));
}

/** Options of {@linkcode addVxlan}. */
export interface VxlanOptions {
  name: string;
  vni: number;
  /** UDP destination port; the kernel's default (8472) when absent. */
  port?: number;
  /** Local VTEP address (IPv4 or IPv6). */
  local?: string;
  /** Multicast group or single unicast remote. */
  group?: string;
  /** Underlay link ifindex. */
  dev?: number;
  /** Learn remote MACs from traffic (kernel default: on). */
  learning?: boolean;
  ttl?: number;
  mtu?: number;
  /** The device's own MAC (its VTEP address in L3 mode); random when absent. */
  mac?: string;
}

/** Creates a VXLAN device. */
export function addVxlan(sock: NlSocket, o: VxlanOptions): void {
  const w = newLink(o.name, "vxlan", { mtu: o.mtu, mac: o.mac }, (w) => {
    w.u32(IFLA_VXLAN.ID, o.vni);
    if (o.group !== undefined) {
      const g = ipBytes(o.group);
      w.bytes(g.family === 4 ? IFLA_VXLAN.GROUP : IFLA_VXLAN.GROUP6, g.bytes);
    }
    if (o.local !== undefined) {
      const l = ipBytes(o.local);
      w.bytes(l.family === 4 ? IFLA_VXLAN.LOCAL : IFLA_VXLAN.LOCAL6, l.bytes);
    }
    if (o.dev !== undefined) w.u32(IFLA_VXLAN.LINK, o.dev);
    if (o.ttl !== undefined) w.u8(IFLA_VXLAN.TTL, o.ttl);
    if (o.learning !== undefined) w.u8(IFLA_VXLAN.LEARNING, o.learning ? 1 : 0);
    if (o.port !== undefined) w.be16(IFLA_VXLAN.PORT, o.port);
  });
  sock.request(`add vxlan "${o.name}" (vni ${o.vni})`, w);
}

/** Options of {@linkcode addMacvlan}. */
export interface MacvlanOptions {
  name: string;
  /** ifindex of the lower link, in the socket's netns. */
  master: number;
  mode: "bridge" | "private" | "vepa" | "passthru";
  mtu?: number;
  mac?: string;
  /** Link group (IFLA_GROUP), set at creation. */
  group?: number;
  /** Create it directly in this netns. */
  ns?: NetNs;
}

/** Creates a macvlan on `master`, in `ns` when given. */
export function addMacvlan(sock: NlSocket, o: MacvlanOptions): void {
  const mode = MACVLAN_MODES[o.mode];
  if (mode === undefined) throw new RangeError(`Invalid macvlan mode "${o.mode}"`);
  const w = newLink(o.name, "macvlan", o, (w) => w.u32(IFLA_MACVLAN_MODE, mode));
  w.u32(IFLA.LINK, o.master);
  sock.request(`add macvlan "${o.name}" on #${o.master}`, w);
}

/** Options of {@linkcode addIpvlan}. */
export interface IpvlanOptions {
  name: string;
  /** ifindex of the lower link, in the socket's netns. */
  master: number;
  mode: "l2" | "l3" | "l3s";
  mtu?: number;
  /** Link group (IFLA_GROUP), set at creation. */
  group?: number;
  /** Create it directly in this netns. */
  ns?: NetNs;
}

/** Creates an ipvlan on `master`, in `ns` when given. */
export function addIpvlan(sock: NlSocket, o: IpvlanOptions): void {
  const mode = IPVLAN_MODES[o.mode];
  if (mode === undefined) throw new RangeError(`Invalid ipvlan mode "${o.mode}"`);
  const w = newLink(o.name, "ipvlan", o, (w) => w.u16(IFLA_IPVLAN_MODE, mode));
  w.u32(IFLA.LINK, o.master);
  sock.request(`add ipvlan "${o.name}" on #${o.master}`, w);
}

/** Creates a dummy link. */
export function addDummy(sock: NlSocket, o: { name: string; mtu?: number }): void {
  sock.request(`add dummy "${o.name}"`, newLink(o.name, "dummy", o));
}
