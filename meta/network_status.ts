/**
 * The `k8s.v1.cni.cncf.io/network-status` entries podplex writes back to a pod, built the
 * way Multus builds them (network-attachment-definition-client, netutils
 * `CreateNetworkStatuses`): one entry per sandbox interface of each attachment's result.
 *
 * @module
 */
import type { AttachmentState } from "./state.ts";

/** One entry of the network-status annotation. */
export interface NetworkStatusEntry {
  /** The network's statusName (`ns/name` for NADs). */
  name: string;
  interface?: string;
  /** Addresses without prefix length. */
  ips?: string[];
  mac?: string;
  mtu?: number;
  /** True for the interface that carries the pod's default route. */
  default?: boolean;
  dns?: Record<string, unknown>;
  /** Gateways of the attachment's default routes. */
  gateway?: string[];
}

interface ResultIface {
  name?: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
}
interface ResultIp {
  address?: string;
  gateway?: string;
  interface?: number;
}
interface ResultRoute {
  dst?: string;
  gw?: string;
}

function list<T>(v: unknown): T[] {
  return Array.isArray(v) ? v as T[] : [];
}

function isDefaultDst(dst: string | undefined): boolean {
  return dst === "0.0.0.0/0" || dst === "::/0";
}

function stripPrefix(address: string): string {
  const slash = address.indexOf("/");
  return slash < 0 ? address : address.slice(0, slash);
}

/** Copies only the fields that are set (the annotation omits empty fields, as Go's omitempty). */
function entry(fields: NetworkStatusEntry): NetworkStatusEntry {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || v === "" || (Array.isArray(v) && v.length === 0)) continue;
    if (typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 0) continue;
    out[k] = v;
  }
  return out as unknown as NetworkStatusEntry;
}

/** Index (into interfaces) of the interface whose IP has a gateway; -1 when none. */
function gatewayIfaceIndex(ips: ResultIp[]): number {
  const withGw = ips.find((ip) => ip.gateway && ip.interface !== undefined);
  return withGw?.interface ?? -1;
}

/** Entries for one attachment, in the order of its sandbox interfaces. */
function attachmentEntries(att: AttachmentState): NetworkStatusEntry[] {
  const result = att.result ?? {};
  const ifaces = list<ResultIface>(result.interfaces);
  const ips = list<ResultIp>(result.ips);
  const gateways = list<ResultRoute>(result.routes)
    .filter((r) => isDefaultDst(r.dst) && r.gw)
    .map((r) => r.gw as string);
  const dns = result.dns as Record<string, unknown> | undefined;
  const sandboxIdx = ifaces.flatMap((i, idx) => (i.sandbox ? [idx] : []));

  if (sandboxIdx.length === 0) {
    // No interface reported in the sandbox (an IPAM-style result): one entry under the
    // attachment's ifname with every IP, so the pod still shows what it got.
    const all = ips.flatMap((ip) => (ip.address ? [stripPrefix(ip.address)] : []));
    return [entry({
      name: att.network,
      interface: att.ifname,
      ips: all,
      default: att.isDefault || undefined,
      dns,
      gateway: gateways,
    })];
  }
  // The default flag goes to the interface with a gateway, else the first sandbox one.
  const gwIdx = gatewayIfaceIndex(ips);
  const defaultIdx = att.isDefault ? (sandboxIdx.includes(gwIdx) ? gwIdx : sandboxIdx[0]) : -1;
  const lastIdx = sandboxIdx[sandboxIdx.length - 1];
  return sandboxIdx.map((idx) => {
    const iface = ifaces[idx];
    const own = ips.filter((ip) =>
      // IPs without an interface index belong to the last sandbox interface (Multus's rule).
      ip.address && (ip.interface === idx || (ip.interface === undefined && idx === lastIdx))
    );
    return entry({
      name: att.network,
      interface: iface.name,
      ips: own.map((ip) => stripPrefix(ip.address as string)),
      mac: iface.mac,
      mtu: iface.mtu,
      default: idx === defaultIdx || undefined,
      dns,
      gateway: gateways,
    });
  });
}

/**
 * Builds the network-status list for a pod from its attachments, in attachment order.
 *
 * @example
 * ```ts
 * const status = buildNetworkStatus(state.attachments);
 * annotations["k8s.v1.cni.cncf.io/network-status"] = JSON.stringify(status, null, 2);
 * ```
 */
export function buildNetworkStatus(atts: AttachmentState[]): NetworkStatusEntry[] {
  return atts.flatMap(attachmentEntries);
}
