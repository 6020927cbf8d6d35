/**
 * What the metrics read from disk at scrape time: the state files of the stateDirs the
 * daemon's calls named (every attachment podplex remembers, whichever mode made it), and for
 * each host-local network among them, its range sets' size and the leases in its store.
 *
 * @module
 */
import { readBoundedTextSync } from "../../conf/bounded_read.ts";
import { compareIp, tryParseIp } from "../../conf/ip.ts";
import { isObject } from "../../conf/json.ts";
import { resolveIn } from "../../conf/paths.ts";
import { parseConfOrList } from "../../conf/netconf.ts";
import { DEFAULT_DATA_DIR } from "../../delegates/ipam/host_local/disk_store.ts";
import { parseHostLocalConf } from "../../delegates/ipam/host_local/host_local.ts";
import { rangeFor, type RangeSet, rangeSetString } from "../../delegates/ipam/host_local/range.ts";
import { CONF_DEFAULTS, META_TYPE } from "../../meta/conf.ts";

/** The part of a state file the metrics use. */
export interface StateSummary {
  attachments: { network: string; confText: string }[];
}

/** One host-local range set's use. */
export interface PoolUse {
  network: string;
  range: string;
  size: number;
  used: number;
}

/** The stateDir of a call's podplex conf (its default when it names none), if it is one. */
export function stateDirOf(env: Record<string, string>, stdin: Uint8Array): string | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(stdin));
  } catch {
    return undefined;
  }
  if (!isObject(raw)) return undefined;
  const entry = Array.isArray(raw.plugins) ? raw.plugins[0] : raw;
  if (!isObject(entry) || entry.type !== META_TYPE) return undefined;
  const dir = typeof entry.stateDir === "string" && entry.stateDir
    ? entry.stateDir
    : CONF_DEFAULTS.stateDir;
  return resolveIn(env.PODPLEX_CWD, dir);
}

/** The states in `dir` (unreadable or corrupt files skipped: GC's business). */
export function statesIn(dir: string): StateSummary[] {
  const out: StateSummary[] = [];
  let names: string[];
  try {
    names = [...Deno.readDirSync(dir)].filter((e) => e.isFile).map((e) => e.name);
  } catch {
    return out;
  }
  for (const name of names) {
    if (!name.endsWith(".json") || name.includes(".tmp-")) continue;
    try {
      const text = readBoundedTextSync(`${dir}/${name}`, {
        what: "state file",
        maxBytes: 8 << 20,
      });
      const s = text === null ? undefined : JSON.parse(text);
      if (isObject(s) && Array.isArray(s.attachments)) out.push(s as unknown as StateSummary);
    } catch { /* skipped */ }
  }
  return out;
}

function setSize(set: RangeSet): number {
  let n = 0n;
  for (const r of set) {
    n += r.rangeEnd.value - r.rangeStart.value + 1n;
    if (compareIp(r.gateway, r.rangeStart) >= 0 && compareIp(r.gateway, r.rangeEnd) <= 0) n--;
  }
  return Number(n);
}

function leasesIn(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => tryParseIp(n));
  } catch {
    return [];
  }
}

/** The host-local pools of the networks the states name, with the leases in their stores. */
export function poolUse(states: StateSummary[]): PoolUse[] {
  const seen = new Map<string, PoolUse>();
  const texts = new Set(states.flatMap((s) => s.attachments.map((a) => a.confText)));
  for (const text of texts) {
    let list;
    try {
      list = parseConfOrList(text);
    } catch {
      continue;
    }
    for (const { conf: plugin } of list.plugins) {
      const ipam = (plugin as { ipam?: { type?: unknown } }).ipam;
      if (ipam?.type !== "host-local") continue;
      let conf;
      try {
        conf = parseHostLocalConf({ ...plugin, name: list.name, cniVersion: list.cniVersion });
      } catch {
        continue;
      }
      const dir = `${conf.dataDir || DEFAULT_DATA_DIR}/${conf.name}`;
      const ips = leasesIn(dir).map((n) => tryParseIp(n)!);
      for (const set of conf.ranges) {
        const range = rangeSetString(set);
        const key = `${dir}\u0000${range}`;
        if (seen.has(key)) continue;
        const used = ips.filter((ip) => rangeFor(set, ip)).length;
        seen.set(key, { network: conf.name, range, size: setSize(set), used });
      }
    }
  }
  return [...seen.values()];
}
