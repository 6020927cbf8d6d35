/**
 * The node's VXLAN devices (its VTEPs) in L3 mode, as flannel's vxlan backend makes them,
 * one per family: `podplex.<VNI>` (flannel's `flannel.<VNI>`) over the IPv4 underlay for the
 * IPv4 subnet, `podplex-v6.<VNI>` (`flannel-v6.<VNI>`) over the IPv6 underlay for the IPv6
 * subnet. Learning off, no remote and no group (every remote is a static FDB entry), the
 * node subnet's network address as a /32 (/128) on it (the source of the node's own traffic
 * to remote pods, and the gateway the others route this node's subnet through), MTU the
 * underlay's minus 50 (20 IPv4 + 8 UDP + 8 VXLAN + 14 inner Ethernet), minus 70 over IPv6.
 *
 * Its MAC is derived from the node name and VNI, so that a device made again after a reboot
 * or a restart has the MAC the node's lease already publishes.
 *
 * @module
 */
import { CniError, Code } from "../../../conf/errors.ts";
import type { LinkInfo, Netlink } from "../../../ffi/mod.ts";
import { kernelError } from "../../_shared/link_common.ts";
import { formatIp, tryParseCidr, tryParseIp } from "../../../conf/ip.ts";

/** The VXLAN overhead on an IPv4 underlay. */
export const VXLAN_OVERHEAD = 50;

/** The VXLAN overhead on an IPv6 underlay (its header is 20 bytes longer). */
export const VXLAN6_OVERHEAD = 70;

/** The device to make. */
export interface VtepSpec {
  name: string;
  vni: number;
  port: number;
  /** The underlay link. */
  underlay: LinkInfo;
  /** The node's underlay address (the packets' source). */
  local: string;
  mac: string;
  /** `10.244.1.0/32` (`fd00:10:244:1::/128`): the node subnet's network address. */
  address: string;
  mtu: number;
}

/**
 * A locally administered unicast MAC from sha-256 of `node` and `vni` (first octet `x2`,
 * `x6`, `xa` or `xe`); the v6 VTEP's differs from the v4 one's.
 */
export async function stableMac(node: string, vni: number, family: 4 | 6 = 4): Promise<string> {
  const tag = family === 4 ? "podplex-vtep" : "podplex-vtep6";
  const data = new TextEncoder().encode(`${tag}\0${node}\0${vni}`);
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", data)).subarray(0, 6);
  h[0] = (h[0] & 0xfc) | 0x02;
  return Array.from(h, (b) => b.toString(16).padStart(2, "0")).join(":");
}

/**
 * The MTU of the overlay: the underlay's minus the overhead (of an IPv6 underlay when
 * `v6Underlay`), or `mtu` when lower.
 */
export function overlayMtu(underlayMtu: number, mtu?: number, v6Underlay = false): number {
  const max = underlayMtu - (v6Underlay ? VXLAN6_OVERHEAD : VXLAN_OVERHEAD);
  if (mtu !== undefined && mtu > max) {
    throw new CniError(
      Code.InvalidConfig,
      `Invalid "mtu": ${mtu} exceeds the underlay's ${underlayMtu} minus the VXLAN overhead`,
    );
  }
  return mtu ?? max;
}

/** Why an existing device cannot be kept (undefined: it can). */
function mismatch(l: LinkInfo, s: VtepSpec): string | undefined {
  if (l.kind !== "vxlan") return `it is a ${l.kind ?? "physical"} link, not vxlan`;
  const v = l.vxlan;
  if (!v) return undefined;
  if (v.vni !== s.vni) return `its VNI is ${v.vni}, not ${s.vni}`;
  if (v.port !== undefined && v.port !== s.port) return `its port is ${v.port}, not ${s.port}`;
  if (v.local !== undefined && !sameIp(v.local, s.local)) {
    return `its local address is ${v.local}`;
  }
  if (v.dev !== undefined && v.dev !== s.underlay.index) return "its underlay changed";
  if (v.learning) return "it learns MACs";
  return undefined;
}

/**
 * Makes the device as `spec` says, keeping one that matches (so its entries survive):
 * created when missing, made again when its VNI, port, local address or underlay differ,
 * MAC, MTU and the single IPv4 address put right, brought up.
 *
 * @returns the device
 * @throws {CniError} code 101 naming the device
 */
export function ensureVtep(nl: Netlink, s: VtepSpec): LinkInfo {
  try {
    let l = nl.getLink(s.name);
    if (l && mismatch(l, s)) {
      if (l.kind !== "vxlan") {
        throw new CniError(
          Code.AlreadyExists,
          `"${s.name}" already exists and cannot be the VTEP: ${mismatch(l, s)}`,
        );
      }
      nl.deleteLink(l.index);
      l = null;
    }
    if (!l) {
      nl.addVxlan({
        name: s.name,
        vni: s.vni,
        port: s.port,
        local: s.local,
        dev: s.underlay.index,
        learning: false,
        mac: s.mac,
        mtu: s.mtu,
      });
      l = nl.requireLink(s.name);
    }
    if (l.mac !== s.mac) {
      nl.setDown(l.index);
      nl.setMac(l.index, s.mac);
    }
    if (l.mtu !== s.mtu) nl.setMtu(l.index, s.mtu);
    ensureOnlyAddress(nl, l.index, s.address);
    nl.setUp(l.index);
    return nl.requireLink(l.index);
  } catch (err) {
    if (err instanceof CniError) throw err;
    throw kernelError(`Cannot set up the VTEP "${s.name}"`, err);
  }
}

function sameIp(a: string, b: string): boolean {
  const x = tryParseIp(a);
  return !!x && x.value === tryParseIp(b)?.value;
}

/**
 * Leaves exactly `cidr` as the device's address of its family (a node's old subnet is
 * removed; an IPv6 link-local address stays). An IPv6 one skips DAD: it is the node's own
 * /128, usable at once.
 */
function ensureOnlyAddress(nl: Netlink, index: number, cidr: string): void {
  const want = tryParseCidr(cidr)!;
  let present = false;
  for (const a of nl.listAddrs(index, want.family)) {
    if (a.address.startsWith("fe80:")) continue;
    const text = `${a.address}/${a.prefixLen}`;
    if (sameIp(a.address, formatIp(want.ip)) && a.prefixLen === want.prefix) present = true;
    else nl.delAddr(index, text);
  }
  if (!present) nl.addAddr(index, cidr, { noDad: want.family === 6 });
}
