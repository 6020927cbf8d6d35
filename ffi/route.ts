/**
 * Routes (RTM_NEWROUTE / RTM_DELROUTE / RTM_GETROUTE).
 *
 * @module
 */
import { afOf, cidrBytes, familyOfAf, formatIpBytes, ipBytes } from "./_inet.ts";
import { type Attrs, attrU32, MsgWriter, NLM_F, parseAttrs, viewOf } from "./_msg.ts";
import type { NlSocket } from "./_socket.ts";

const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const RTM_GETROUTE = 26;
const RTA = { DST: 1, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, METRICS: 8, TABLE: 15 } as const;
const RTAX = { MTU: 2, ADVMSS: 8 } as const;
const RTMSG_LEN = 12;
const RTPROT_BOOT = 3;
const RTN_UNICAST = 1;
const RT_SCOPE_LINK = 253;
const RT_SCOPE_NOWHERE = 255;
const RTNH_F_ONLINK = 0x4;
const RTM_F_CLONED = 0x200;
/** The main routing table, `ip route`'s default. */
export const RT_TABLE_MAIN = 254;

/** A route as the kernel reports it. */
export interface RouteInfo {
  /** Destination network: `0.0.0.0/0`, `::/0` or a CIDR. */
  dst: string;
  gw?: string;
  /** Output ifindex. */
  dev?: number;
  /** RTA_PRIORITY. */
  metric?: number;
  table: number;
  /** RT_SCOPE_*. */
  scope: number;
  mtu?: number;
  advmss?: number;
  family: 4 | 6;
  /** RTA_PREFSRC, the preferred source address. */
  src?: string;
  /** RTN_* (1 unicast, 2 local, 3 broadcast...). */
  type: number;
}

/** Options of {@linkcode addRoute}. */
export interface AddRouteOptions {
  /** `0.0.0.0/0`, `::/0`, a CIDR (host bits are cleared) or a bare address (host route). */
  dst: string;
  gw?: string;
  dev?: number;
  metric?: number;
  /** Default: main (254). */
  table?: number;
  /** Default: link (253) for a route without gateway, else universe (0). */
  scope?: number;
  mtu?: number;
  advmss?: number;
  /** Gateway reachable on `dev` even outside its subnets (RTNH_F_ONLINK). */
  onlink?: boolean;
  /** Preferred source address. */
  src?: string;
}

/** Starts a route message with its rtmsg and the attributes shared by add and delete. */
function routeMsg(
  type: number,
  flags: number,
  r: { dst: string; gw?: string; dev?: number; metric?: number; table?: number },
  scope: number,
  rtmFlags = 0,
): MsgWriter {
  const d = cidrBytes(r.dst);
  const table = r.table ?? RT_TABLE_MAIN;
  const w = new MsgWriter(type, flags);
  const rtm = w.struct(RTMSG_LEN);
  rtm.setUint8(0, afOf(d.family));
  rtm.setUint8(1, d.prefixLen);
  rtm.setUint8(4, table < 256 ? table : 0); // larger tables only fit in RTA_TABLE
  rtm.setUint8(6, scope);
  rtm.setUint32(8, rtmFlags, true);
  if (type === RTM_NEWROUTE) {
    rtm.setUint8(5, RTPROT_BOOT);
    rtm.setUint8(7, RTN_UNICAST);
  }
  if (d.prefixLen > 0) w.bytes(RTA.DST, d.network);
  w.u32(RTA.TABLE, table);
  if (r.gw !== undefined) w.bytes(RTA.GATEWAY, ipBytes(r.gw).bytes);
  if (r.dev !== undefined) w.u32(RTA.OIF, r.dev);
  if (r.metric !== undefined) w.u32(RTA.PRIORITY, r.metric);
  return w;
}

/** Describes a route for messages: `10.1.0.0/16 via 10.0.0.1 dev #3`. */
function describe(r: { dst: string; gw?: string; dev?: number }): string {
  return `${r.dst}${r.gw ? ` via ${r.gw}` : ""}${r.dev !== undefined ? ` dev #${r.dev}` : ""}`;
}

/**
 * Adds a route.
 *
 * @throws {NetlinkError} kind "exists" when the same route is there
 */
export function addRoute(sock: NlSocket, r: AddRouteOptions): void {
  const scope = r.scope ?? (r.gw === undefined && r.dev !== undefined ? RT_SCOPE_LINK : 0);
  const flags = NLM_F.CREATE | NLM_F.EXCL | NLM_F.ACK;
  const w = routeMsg(RTM_NEWROUTE, flags, r, scope, r.onlink ? RTNH_F_ONLINK : 0);
  if (r.src !== undefined) w.bytes(RTA.PREFSRC, ipBytes(r.src).bytes);
  if (r.mtu !== undefined || r.advmss !== undefined) {
    w.begin(RTA.METRICS);
    if (r.mtu !== undefined) w.u32(RTAX.MTU, r.mtu);
    if (r.advmss !== undefined) w.u32(RTAX.ADVMSS, r.advmss);
    w.end();
  }
  sock.request(`add route ${describe(r)}`, w);
}

/**
 * Deletes a route; fields left out match anything.
 *
 * @throws {NetlinkError} kind "notfound" when no route matches
 */
export function delRoute(
  sock: NlSocket,
  r: { dst: string; gw?: string; dev?: number; table?: number; metric?: number },
): void {
  sock.request(
    `delete route ${describe(r)}`,
    routeMsg(RTM_DELROUTE, NLM_F.ACK, r, RT_SCOPE_NOWHERE),
  );
}

/** Decodes an RTM_NEWROUTE body; undefined for other families and cached clones. */
function parseRoute(body: Uint8Array): RouteInfo | undefined {
  const v = viewOf(body);
  const family = familyOfAf(v.getUint8(0));
  if (!family || v.getUint32(8, true) & RTM_F_CLONED) return undefined;
  const a = parseAttrs(body, RTMSG_LEN);
  const dstLen = v.getUint8(1);
  const dstRaw = a.get(RTA.DST);
  const zero = family === 4 ? "0.0.0.0" : "::";
  const info: RouteInfo = {
    dst: `${dstRaw ? formatIpBytes(dstRaw) : zero}/${dstLen}`,
    table: attrU32(a, RTA.TABLE) ?? v.getUint8(4),
    scope: v.getUint8(6),
    family,
    type: v.getUint8(7),
  };
  putOptional(info, a);
  return info;
}

function putOptional(info: RouteInfo, a: Attrs): void {
  const gw = a.get(RTA.GATEWAY);
  if (gw) info.gw = formatIpBytes(gw);
  const src = a.get(RTA.PREFSRC);
  if (src) info.src = formatIpBytes(src);
  const dev = attrU32(a, RTA.OIF);
  if (dev !== undefined) info.dev = dev;
  const metric = attrU32(a, RTA.PRIORITY);
  if (metric !== undefined) info.metric = metric;
  const metrics = a.get(RTA.METRICS);
  if (metrics) {
    const m = parseAttrs(metrics);
    const mtu = attrU32(m, RTAX.MTU);
    if (mtu !== undefined) info.mtu = mtu;
    const advmss = attrU32(m, RTAX.ADVMSS);
    if (advmss !== undefined) info.advmss = advmss;
  }
}

/**
 * Routes of the socket's netns.
 *
 * @param o family; table (default main 254, 0 for every table); dev (output ifindex)
 */
export function listRoutes(
  sock: NlSocket,
  o: { family?: 4 | 6; table?: number; dev?: number } = {},
): RouteInfo[] {
  const table = o.table ?? RT_TABLE_MAIN;
  const make = () => {
    const w = new MsgWriter(RTM_GETROUTE, NLM_F.DUMP);
    w.struct(RTMSG_LEN).setUint8(0, o.family ? afOf(o.family) : 0);
    return w;
  };
  const out: RouteInfo[] = [];
  for (const m of sock.dump("list routes", make)) {
    if (m.type !== RTM_NEWROUTE) continue;
    const r = parseRoute(m.body);
    if (!r) continue;
    if (table !== 0 && r.table !== table) continue;
    if (o.dev !== undefined && r.dev !== o.dev) continue;
    if (o.family !== undefined && r.family !== o.family) continue;
    out.push(r);
  }
  return out;
}
