/**
 * The built-in host-local IPAM: the reference plugin's config, allocation order and
 * on-disk format (plugins/ipam/host-local), so podplex and the reference can share one
 * `dataDir`. Adds GC (spec 1.1) and STATUS, which the reference 1.1.1 lacks.
 *
 * The delegate gets the whole network conf, as reference IPAM plugins do: it reads
 * `.ipam`, `.name`, `.cniVersion`, `.args` and `.runtimeConfig`.
 *
 * @module
 */
import { CniError, Code } from "../../../conf/errors.ts";
import { validAttachments } from "../../../conf/gc.ts";
import { formatIp, type IP, parseCidr, tryParseIp } from "../../../conf/ip.ts";
import type { CniDns, CniResult, CniRoute } from "../../../conf/types.ts";
import { resolveIn } from "../../../conf/paths.ts";
import type { BuiltinDelegate, DelegateContext, PluginEnv } from "../../types.ts";
import { IpAllocator } from "./allocator.ts";
import {
  checkPerFamily,
  confVersion,
  ipamSection,
  ipList,
  type Json,
  optArray,
  optObject,
  optString,
  parseRoutes,
} from "../_conf.ts";
import { DiskStore } from "./disk_store.ts";
import { checkRangeSets, parseRangeSet, rangeFor, type RangeSet } from "./range.ts";
import type { Store } from "./store.ts";

/** host-local's parsed and defaulted config. */
export interface HostLocalConf {
  /** The network name: the store's directory under `dataDir`. */
  name: string;
  cniVersion: string;
  /** Range sets in order: runtimeConfig.ipRanges, the legacy top-level range, `ranges`. */
  ranges: RangeSet[];
  routes?: CniRoute[];
  /** Empty means /var/lib/cni/networks. */
  dataDir: string;
  /** A resolv.conf file to read `dns` from on ADD. */
  resolvConf?: string;
  /** Requested addresses from `args.cni.ips` then `runtimeConfig.ips` (CNI_ARGS come first). */
  requestedIps: IP[];
}

/** Opens the store of a network; tests swap it for an in-memory one. */
export type StoreFactory = (conf: HostLocalConf) => Promise<Store>;

const diskStore: StoreFactory = (conf) => DiskStore.open(conf.name, conf.dataDir);

/**
 * Parses the whole network conf for host-local.
 *
 * @throws {CniError} code 7 naming the field at fault
 */
export function parseHostLocalConf(raw: Json, env?: PluginEnv): HostLocalConf {
  const ipam = ipamSection(raw);
  const runtime = optObject(raw, "runtimeConfig", "runtimeConfig");
  const args = optObject(optObject(raw, "args", "args"), "cni", "args.cni");
  const requested = [
    ...ipList(optArray(args, "ips", "args.cni.ips"), "args.cni.ips"),
    ...ipList(optArray(runtime, "ips", "runtimeConfig.ips"), "runtimeConfig.ips"),
  ].map((t, i) => requestedIp(t, `ips[${i}]`));
  const ranges = collectRanges(ipam, runtime);
  checkPerFamily(confVersion(raw), ranges.map((s) => s[0].subnet.family));
  const conf: HostLocalConf = {
    name: optString(raw, "name", "name") ?? "",
    cniVersion: confVersion(raw),
    ranges,
    dataDir: resolveIn(env?.cwd, optString(ipam, "dataDir", "ipam.dataDir") ?? ""),
    requestedIps: requested,
  };
  const routes = parseRoutes(optArray(ipam, "routes", "ipam.routes"), "ipam.routes");
  if (routes) conf.routes = routes;
  const resolvConf = optString(ipam, "resolvConf", "ipam.resolvConf");
  if (resolvConf) conf.resolvConf = resolveIn(env?.cwd, resolvConf);
  return conf;
}

/** `ip` or `ip/prefix` (only the address counts), as the reference's ip.IP type reads it. */
function requestedIp(text: string, path: string): IP {
  const ip = text.includes("/") ? parseCidr(text, path).ip : tryParseIp(text);
  if (!ip) throw new CniError(Code.InvalidConfig, `Invalid "${path}": "${text}" is not an IP`);
  return ip;
}

function collectRanges(ipam: Json, runtime: Json | undefined): RangeSet[] {
  const sets: RangeSet[] = [];
  // The capability's ranges come first, as in the reference (they do not replace `ranges`).
  const dynamic = optArray(runtime, "ipRanges", "runtimeConfig.ipRanges") ?? [];
  dynamic.forEach((s, i) => sets.push(parseRangeSet(s, `runtimeConfig.ipRanges[${i}]`)));
  // The legacy single range counts only when it has a subnet.
  if (optString(ipam, "subnet", "ipam.subnet")) sets.push(parseRangeSet([ipam], "ipam"));
  const ranges = optArray(ipam, "ranges", "ipam.ranges") ?? [];
  ranges.forEach((s, i) => sets.push(parseRangeSet(s, `ipam.ranges[${i}]`)));
  checkRangeSets(sets, "ipam.ranges");
  return sets;
}

/** The CNI_ARGS `IP` (comma-separated; the reference takes a single address). */
function envIps(ctx: DelegateContext): IP[] {
  const text = ctx.cniArgs.get("IP");
  if (!text) return [];
  return text.split(",").map((t) => requestedIp(t.trim(), "CNI_ARGS IP"));
}

/** Reads nameserver, domain, search and options from a resolv.conf file. */
export async function parseResolvConf(path: string): Promise<CniDns> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw CniError.wrap(err, Code.IoFailure, `Cannot read "resolvConf" file "${path}"`);
  }
  const dns: CniDns = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line[0] === "#" || line[0] === ";") continue;
    const [key, ...rest] = line.split(/\s+/);
    if (rest.length === 0) continue;
    if (key === "nameserver") (dns.nameservers ??= []).push(rest[0]);
    else if (key === "domain") dns.domain = rest[0];
    else if (key === "search") (dns.search ??= []).push(...rest);
    else if (key === "options") (dns.options ??= []).push(...rest);
  }
  return dns;
}

/**
 * Picks, for each set, the first requested address it holds.
 *
 * @returns the picks by set index and the requested addresses no set holds
 */
function assignRequested(sets: RangeSet[], requested: IP[]): [(IP | undefined)[], string[]] {
  const left = new Map(requested.map((ip) => [formatIp(ip), ip]));
  const picks = sets.map((set) => {
    for (const [key, ip] of left) {
      if (!rangeFor(set, ip)) continue;
      left.delete(key);
      return ip;
    }
    return undefined;
  });
  return [picks, [...left.keys()]];
}

async function withStore<T>(
  conf: HostLocalConf,
  open: StoreFactory,
  fn: (s: Store) => Promise<T>,
): Promise<T> {
  let store: Store;
  try {
    store = await open(conf);
  } catch (err) {
    throw CniError.wrap(err, Code.IoFailure, `Cannot open the lease store of "${conf.name}"`);
  }
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

async function allocate(
  conf: HostLocalConf,
  ctx: DelegateContext,
  store: Store,
): Promise<CniResult["ips"]> {
  const id = ctx.env.containerId ?? "";
  const ifname = ctx.env.ifname ?? "";
  const [picks, unplaced] = assignRequested(conf.ranges, [...envIps(ctx), ...conf.requestedIps]);
  const done: IpAllocator[] = [];
  const ips = [];
  try {
    for (const [i, set] of conf.ranges.entries()) {
      const alloc = new IpAllocator(set, store, i);
      try {
        ips.push(await alloc.get(id, ifname, picks[i]));
      } catch (err) {
        throw CniError.wrap(err, Code.Internal, `Cannot allocate from range set ${i}`);
      }
      done.push(alloc);
    }
    // Checked only after allocating, as the reference does: the failed ADD still moves
    // last_reserved_ip, and a shared dataDir must see the same files from either plugin.
    if (unplaced.length > 0) {
      throw new CniError(
        Code.InvalidConfig,
        `Cannot allocate all requested IPs: ${unplaced.join(" ")} is in no range set`,
      );
    }
  } catch (err) {
    // Undo: an ADD that fails holds nothing.
    for (const alloc of done) await alloc.release(id, ifname).catch(() => {});
    throw err;
  }
  return ips;
}

/** ADD: one address per range set, with routes and (from resolvConf) dns. */
export async function hostLocalAdd(
  conf: HostLocalConf,
  ctx: DelegateContext,
  open: StoreFactory = diskStore,
): Promise<CniResult> {
  const dns = conf.resolvConf ? await parseResolvConf(conf.resolvConf) : undefined;
  const ips = await withStore(conf, open, (store) => allocate(conf, ctx, store));
  const result: CniResult = { cniVersion: "1.1.0", ips };
  if (conf.routes) result.routes = conf.routes;
  if (dns) result.dns = dns;
  return result;
}

/** DEL: releases every address of the attachment; nothing to release is success. */
export async function hostLocalDel(
  conf: HostLocalConf,
  ctx: DelegateContext,
  open: StoreFactory = diskStore,
): Promise<void> {
  const id = ctx.env.containerId ?? "";
  const ifname = ctx.env.ifname ?? "";
  await withStore(conf, open, async (store) => {
    const errors: string[] = [];
    // Once per set, as the reference: a later pass also drops legacy leases of the id.
    for (const [i, set] of conf.ranges.entries()) {
      await new IpAllocator(set, store, i).release(id, ifname).catch((e) =>
        errors.push(String(e?.message ?? e))
      );
    }
    if (errors.length) {
      throw new CniError(
        Code.IoFailure,
        `Cannot release the addresses of "${id}"`,
        errors.join("; "),
      );
    }
  });
}

/** CHECK: some address of this attachment (or a legacy one of the container) is leased. */
export async function hostLocalCheck(
  conf: HostLocalConf,
  ctx: DelegateContext,
  open: StoreFactory = diskStore,
): Promise<void> {
  const id = ctx.env.containerId ?? "";
  const held = await withStore(conf, open, async (store) => {
    await store.lock();
    try {
      return await store.getByID(id, ctx.env.ifname ?? "");
    } finally {
      await store.unlock();
    }
  });
  if (held.length === 0) {
    throw new CniError(Code.UnknownContainer, `host-local: no address is leased to "${id}"`);
  }
}

/** GC: releases every lease whose attachment is not valid (legacy ones by container id). */
export async function hostLocalGc(
  conf: HostLocalConf,
  ctx: DelegateContext,
  open: StoreFactory = diskStore,
): Promise<IP[]> {
  const valid = validAttachments(ctx.raw);
  const keys = new Set(valid.map((a) => `${a.containerID.trim()}\r\n${a.ifname}`));
  const ids = new Set(valid.map((a) => a.containerID.trim()));
  return await withStore(conf, open, async (store) => {
    await store.lock();
    const released: IP[] = [];
    try {
      await store.removeOrphans?.();
      for (const l of await store.list()) {
        const keep = l.ifname === undefined
          ? ids.has(l.containerId)
          : keys.has(`${l.containerId}\r\n${l.ifname}`);
        if (keep) continue;
        await store.release(l.ip);
        released.push(l.ip);
      }
    } finally {
      await store.unlock();
    }
    return released;
  });
}

/** STATUS: the network's lease directory exists (or can be made), can be locked and written. */
export async function hostLocalStatus(
  conf: HostLocalConf,
  open: StoreFactory = diskStore,
): Promise<void> {
  try {
    await withStore(conf, open, async (store) => {
      await store.lock();
      await store.unlock();
      await store.probeWrite?.();
    });
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    throw new CniError(Code.NotAvailable, `host-local is not available: ${text}`, undefined, {
      cause: err,
    });
  }
}

/** The host-local delegate (type `host-local`). */
export const hostLocal: BuiltinDelegate<HostLocalConf> = {
  type: "host-local",
  parseConf: parseHostLocalConf,
  add: (conf, ctx) => hostLocalAdd(conf, ctx),
  del: (conf, ctx) => hostLocalDel(conf, ctx),
  check: (conf, ctx) => hostLocalCheck(conf, ctx),
  gc: async (conf, ctx) => {
    await hostLocalGc(conf, ctx);
  },
  status: (conf) => hostLocalStatus(conf),
};
