/**
 * The canonical (spec 1.1.0) result types. Every result inside podplex is held in this
 * shape; `conf/result.ts` converts from and to the other spec versions at the edges.
 *
 * @module
 */

/** An interface a plugin created or configured (spec 1.1.0 `interfaces[]`). */
export interface CniInterface {
  /** The interface name. */
  name: string;
  /** Its hardware address. */
  mac?: string;
  /** Its MTU (1.1.0). */
  mtu?: number;
  /** The netns path for a container-side interface; absent for host-side ones. */
  sandbox?: string;
  /** A socket path for userspace interfaces (1.1.0). */
  socketPath?: string;
  /** A PCI address (1.1.0). */
  pciID?: string;
}

/** An assigned address (spec 1.1.0 `ips[]`). `address` is CIDR notation, e.g. `10.1.0.5/24`. */
export interface CniIpConfig {
  /** The address with its prefix length (`ip/prefix`). */
  address: string;
  /** The default gateway for this subnet. */
  gateway?: string;
  /** Index into `interfaces`; absent in IPAM results. */
  interface?: number;
}

/** A route (spec 1.1.0 `routes[]`). */
export interface CniRoute {
  /** The destination (`ip/prefix`). */
  dst: string;
  /** The next hop (default: the gateway of the interface). */
  gw?: string;
  /** The route's MTU (1.1.0). */
  mtu?: number;
  /** The route's advertised MSS (1.1.0). */
  advmss?: number;
  /** The route's priority (1.1.0). */
  priority?: number;
  /** The routing table (1.1.0). */
  table?: number;
  /** The route's scope (1.1.0). */
  scope?: number;
}

/** DNS settings (spec `dns`). */
export interface CniDns {
  /** Name server addresses. */
  nameservers?: string[];
  /** The local domain. */
  domain?: string;
  /** Search domains. */
  search?: string[];
  /** Resolver options. */
  options?: string[];
}

/** A result in the canonical 1.1.0 shape. */
export interface CniResult {
  /** The version the result is in (canonical results carry the ADD's). */
  cniVersion: string;
  /** The interfaces made. */
  interfaces?: CniInterface[];
  /** The addresses assigned. */
  ips?: CniIpConfig[];
  /** The routes added. */
  routes?: CniRoute[];
  /** The DNS settings. */
  dns?: CniDns;
}

/** The verbs a CNI plugin answers. */
export type Verb = "ADD" | "DEL" | "CHECK" | "GC" | "STATUS" | "VERSION";

/** One `{containerID, ifname}` pair of GC's `cni.dev/valid-attachments`. */
export interface Attachment {
  /** CNI_CONTAINERID of the attachment. */
  containerID: string;
  /** CNI_IFNAME of the attachment. */
  ifname: string;
}

/** One plugin's conf (spec 1.1.0 fields; unknown keys kept). */
export interface NetConf {
  /** The spec version of the conf. */
  cniVersion?: string;
  /** Every version the conf can be read as (1.1.0; the highest supported wins). */
  cniVersions?: string[];
  /** The network name. */
  name?: string;
  /** The plugin (binary) that serves it. */
  type: string;
  /** A boolean, or "true"/"false" as libcni also accepts. */
  disableCheck?: boolean | string;
  /** Skip GC (as `disableCheck`). */
  disableGC?: boolean | string;
  /** The capabilities the plugin takes from the runtime (`runtimeConfig`). */
  capabilities?: Record<string, boolean>;
  /** The IPAM plugin's section. */
  ipam?: { type?: string; [key: string]: unknown };
  /** DNS settings for the plugin. */
  dns?: {
    nameservers?: string[];
    domain?: string;
    search?: string[];
    options?: string[];
    [key: string]: unknown;
  };
  /** Extra arguments (`args.cni` conventions). */
  args?: Record<string, unknown>;
  /** Capability arguments injected by the runtime. */
  runtimeConfig?: Record<string, unknown>;
  /** The previous plugin's result, injected by the runtime. */
  prevResult?: Record<string, unknown>;
  /** Masquerade traffic leaving the network. */
  ipMasq?: boolean;
  /** Any other key, kept and passed on. */
  [key: string]: unknown;
}

/** The top level of a conflist (`plugins` checked entry by entry with the conf schema). */
export interface ConfListFields {
  cniVersion?: string;
  cniVersions?: string[];
  name: string;
  disableCheck?: boolean | string;
  disableGC?: boolean | string;
  plugins: Record<string, unknown>[];
  [key: string]: unknown;
}
