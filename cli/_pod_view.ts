/**
 * How the standalone mode shows pods: the interfaces of one pod (from the meta-plugin's
 * network-status, else from the ADD result), as JSON and as a table.
 *
 * @module
 */
import type { NetworkStatusEntry } from "../meta/network_status.ts";
import type { PodState } from "../meta/state.ts";
import { table } from "./_output.ts";

/** One interface of a pod as the standalone commands print it. */
export interface PodInterface {
  interface: string;
  network: string;
  ips: string[];
  mac?: string;
  mtu?: number;
  default?: boolean;
}

/** One pod as `pod up --json` and `pod list --json` print it. */
export interface PodView {
  name: string;
  namespace: string;
  containerId: string;
  netns: string;
  interfaces: PodInterface[];
  /** "ok", or why not (pod list only). */
  health?: string;
  /** podplex pod up made it (false: a runtime did). */
  standalone?: boolean;
}

type Obj = Record<string, unknown>;

/** The interfaces of a pod from its network-status (one entry per sandbox interface). */
export function interfacesOf(state: PodState | null, result?: Obj): PodInterface[] {
  const status = (state?.networkStatus ?? []) as NetworkStatusEntry[];
  if (status.length) {
    return status.map((s) => {
      const i: PodInterface = { interface: s.interface ?? "", network: s.name, ips: s.ips ?? [] };
      if (s.mac) i.mac = s.mac;
      if (s.mtu) i.mtu = s.mtu;
      if (s.default) i.default = true;
      return i;
    });
  }
  return interfacesFromResult(result);
}

/** Fallback when no network-status exists: the sandbox interfaces of a CNI result. */
export function interfacesFromResult(result?: Obj): PodInterface[] {
  const ifaces = (result?.interfaces ?? []) as Array<
    { name: string; mac?: string; sandbox?: string }
  >;
  const ips = (result?.ips ?? []) as Array<{ address: string; interface?: number }>;
  return ifaces.flatMap((iface, idx) => {
    if (!iface.sandbox) return [];
    const own = ips.filter((ip) => ip.interface === idx).map((ip) => ip.address.split("/")[0]);
    const i: PodInterface = { interface: iface.name, network: "", ips: own };
    if (iface.mac) i.mac = iface.mac;
    return [i];
  });
}

/** The table of pods and their interfaces (one line per interface). */
export function podTable(pods: PodView[], withHealth: boolean): string {
  const header = ["POD", "INTERFACE", "IPS", "MAC", "NETWORK"];
  if (withHealth) header.push("HEALTH");
  const rows: string[][] = [];
  for (const p of pods) {
    const ifaces = p.interfaces.length ? p.interfaces : [{ interface: "-", network: "-", ips: [] }];
    ifaces.forEach((i: PodInterface, n) => {
      const row = [
        n === 0 ? `${p.namespace}/${p.name}` : "",
        i.interface + (i.default ? "*" : ""),
        i.ips.join(",") || "-",
        i.mac ?? "-",
        i.network || "-",
      ];
      if (withHealth) row.push(n === 0 ? p.health ?? "" : "");
      rows.push(row);
    });
  }
  return table(header, rows);
}
