/**
 * The built-in delegates: every `type` podplex serves in-process, each a lazy import so a
 * call loads only the delegates it uses. A new delegate is one line here (see
 * `delegates/ADDING.md`). The table is frozen: a registry is given it, or another table
 * (tests, embedding), by the composition root.
 *
 * @module
 */
import type { BuiltinLoader } from "./types.ts";

/** The built-in delegates by type. */
export const BUILTINS: Readonly<Record<string, BuiltinLoader>> = Object.freeze({
  bridge: () => import("./main/bridge.ts").then((m) => m.bridge),
  macvlan: () => import("./main/macvlan.ts").then((m) => m.macvlan),
  ipvlan: () => import("./main/ipvlan.ts").then((m) => m.ipvlan),
  vxlan: () => import("./main/vxlan.ts").then((m) => m.vxlan),
  loopback: () => import("./main/loopback.ts").then((m) => m.loopback),
  "podplex-cluster": () => import("./main/overlay/cluster.ts").then((m) => m.podplexCluster),
  flannel: () => import("./main/overlay/flannel.ts").then((m) => m.flannel),
  "host-local": () => import("./ipam/host_local/host_local.ts").then((m) => m.hostLocal),
  static: () => import("./ipam/static.ts").then((m) => m.staticIpam),
  whereabouts: () => import("./ipam/cluster/cluster.ts").then((m) => m.whereabouts),
  "podplex-ipam": () => import("./ipam/cluster/cluster.ts").then((m) => m.podplexIpam),
  dhcp: () => import("./ipam/dhcp/dhcp.ts").then((m) => m.dhcpIpam),
});

/** The types served in-process. */
export const BUILTIN_TYPES: readonly string[] = Object.freeze(Object.keys(BUILTINS));
