/**
 * The canonical (spec 1.1.0) result types. Every result inside podplex is held in this
 * shape; `conf/result.ts` converts from and to the other spec versions at the edges.
 *
 * @module
 */

/** An interface a plugin created or configured (spec 1.1.0 `interfaces[]`). */
export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  /** The netns path for a container-side interface; absent for host-side ones. */
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

/** An assigned address (spec 1.1.0 `ips[]`). `address` is CIDR notation, e.g. `10.1.0.5/24`. */
export interface CniIpConfig {
  address: string;
  gateway?: string;
  /** Index into `interfaces`; absent in IPAM results. */
  interface?: number;
}

/** A route (spec 1.1.0 `routes[]`). */
export interface CniRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

/** DNS settings (spec `dns`). */
export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** A result in the canonical 1.1.0 shape. */
export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIpConfig[];
  routes?: CniRoute[];
  dns?: CniDns;
}

/** The verbs a CNI plugin answers. */
export type Verb = "ADD" | "DEL" | "CHECK" | "GC" | "STATUS" | "VERSION";

/** One `{containerID, ifname}` pair of GC's `cni.dev/valid-attachments`. */
export interface Attachment {
  containerID: string;
  ifname: string;
}
