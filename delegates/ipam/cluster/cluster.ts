/**
 * The cluster IPAM: addresses unique cluster-wide, kept in etcd, with Whereabouts' config
 * (served as type `whereabouts` so a Whereabouts NAD works unchanged, and as
 * `podplex-ipam`) and Calico's block affinity (see `allocator.ts`).
 *
 * - ADD: per range, under the node-local lock of its address space: one read (the node's
 *   blocks and this attachment's addresses; an address it holds already is returned, so a
 *   repeated ADD is idempotent), then one transaction per address tried. A failure releases
 *   what this ADD reserved. etcd unreachable → code 11 after `etcd_timeout_ms`, nothing kept.
 * - DEL: deletes the attachment's records (matched by container id and interface, never by
 *   pod name). etcd unreachable → the release goes to the node's journal (`journal.ts`) and
 *   DEL succeeds; the journal is replayed before the next ADD/DEL/GC on the node.
 * - GC: releases this node's records whose attachment is not in the valid list.
 * - CHECK: each range has an address for the attachment. STATUS: etcd answers.
 *
 * @module
 */
import { CniError, Code } from "../../../conf/errors.ts";
import { validAttachments } from "../../../conf/gc.ts";
import { type Cidr, contains, formatCidr, formatIp, type IP, parseIp } from "../../../conf/ip.ts";
import type { CniIpConfig, CniResult } from "../../../conf/types.ts";
import { cniError, EtcdClient, EtcdUnavailableError } from "../../../clients/etcd/client.ts";
import type { BuiltinDelegate, DelegateContext } from "../../types.ts";
import { allocate } from "./allocator.ts";
import { type ClusterConf, parseClusterConf, type PoolRange } from "./conf.ts";
import { journalAppend, journalDir, replayJournalDir } from "./journal.ts";
import { blockKey, blockOfKey, hex, type Owner, SpaceKeys, spaceOf } from "./keys.ts";
import { ClusterStore } from "./store.ts";

/** Opens the etcd client of a conf (TLS files read now). */
export async function openEtcd(etcd: ClusterConf["etcd"]): Promise<EtcdClient> {
  const read = async (p: string | undefined, what: string) => {
    if (!p) return undefined;
    try {
      return await Deno.readTextFile(p);
    } catch (err) {
      throw CniError.wrap(err, Code.IoFailure, `Cannot read "${what}" file "${p}"`);
    }
  };
  const ca = await read(etcd.caFile, "etcd_ca_cert_file");
  const cert = await read(etcd.certFile, "etcd_cert_file");
  const key = await read(etcd.keyFile, "etcd_key_file");
  const tls = ca || cert ? { ca, cert, key } : undefined;
  try {
    return new EtcdClient({ endpoints: etcd.endpoints, tls, totalTimeoutMs: etcd.timeoutMs });
  } catch (err) {
    throw CniError.wrap(err, Code.InvalidConfig, `Invalid "ipam.etcd_host"`);
  }
}

/** The node-local lock file of an address space. */
export function lockPath(conf: ClusterConf, keys: SpaceKeys): string {
  const dir = `${conf.dataDir.replace(/\/+$/, "")}/${encodeURIComponent(conf.nodeName)}`;
  return `${dir}/${encodeURIComponent(keys.space)}.lock`;
}

/** The node's affinity lease, when its daemon keeps one (`<dataDir>/<node>/lease`). */
async function nodeLease(conf: ClusterConf): Promise<string | undefined> {
  const path = `${conf.dataDir.replace(/\/+$/, "")}/${encodeURIComponent(conf.nodeName)}/lease`;
  try {
    return (await Deno.readTextFile(path)).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** A store of range `r`'s space for `owner`. */
export function storeFor(
  etcd: EtcdClient,
  conf: ClusterConf,
  r: PoolRange | undefined,
  owner: Owner,
  lease?: string,
  space?: string,
): ClusterStore {
  const keys = new SpaceKeys(conf.etcd.prefix, space ?? spaceOf(conf, r!));
  return new ClusterStore(etcd, keys, owner, lockPath(conf, keys), r?.text ?? "", lease);
}

function ownerOf(conf: ClusterConf, ctx: DelegateContext): Owner {
  const ns = ctx.cniArgs.get("K8S_POD_NAMESPACE") ?? "";
  const name = ctx.cniArgs.get("K8S_POD_NAME") ?? "";
  return {
    containerId: (ctx.env.containerId ?? "").trim(),
    ifname: ctx.env.ifname ?? "",
    pod: name ? `${ns}/${name}` : "",
    node: conf.nodeName,
  };
}

/** Replays the node's journal against this conf's etcd (entries for another etcd stay). */
export function replayJournal(conf: ClusterConf, etcd: EtcdClient): Promise<number> {
  const dir = journalDir(conf.dataDir, conf.nodeName);
  return replayJournalDir(etcd, dir, conf.etcd.prefix, conf.nodeName, conf.etcd.endpoints);
}

async function withEtcd<T>(conf: ClusterConf, fn: (etcd: EtcdClient) => Promise<T>): Promise<T> {
  const etcd = await openEtcd(conf.etcd);
  try {
    return await fn(etcd);
  } finally {
    etcd.close();
  }
}

/**
 * One range's address for the attachment: the one it holds, else a new one. Under the
 * node-local lock of the space, one read gets the node's blocks, the attachment's records
 * and the addresses in use in the blocks the node had last time (a hint file); when the
 * hint was right, the reservation is the only other request.
 */
async function addressFor(
  conf: ClusterConf,
  store: ClusterStore,
  r: PoolRange,
  owner: Owner,
): Promise<{ ip: IP; fresh: boolean }> {
  await store.lock();
  try {
    const hint = await readHint(store);
    const snap = await store.snapshot(conf.nodeName, owner.containerId, owner.ifname, hint);
    const held = snap.held.find((h) => h.range === r.text);
    if (held) return { ip: parseIp(held.ip, "record"), fresh: false };
    const mine = new Set(snap.blocks.map(blockKey));
    const used = new Map([...snap.used].filter(([k]) => mine.has(k)));
    const claimed: Cidr[] = [];
    const ip = await allocate(conf, store, r, snap.blocks, owner, used, (b) => claimed.push(b));
    await writeHint(store, [...snap.blocks, ...claimed]);
    return { ip, fresh: true };
  } finally {
    await store.unlock();
  }
}

/** The node's blocks of the space as last seen (`<lock>.blocks`); none when unknown. */
async function readHint(store: ClusterStore): Promise<Cidr[]> {
  try {
    const text = await Deno.readTextFile(`${store.lockPath}.blocks`);
    return text.split("\n").map((l) => blockOfKey(`/${l}`)).filter((b): b is Cidr => !!b);
  } catch {
    return [];
  }
}

/** Rewrites the hint when the node's blocks changed (claims are rare: usually no write). */
async function writeHint(store: ClusterStore, blocks: Cidr[]): Promise<void> {
  const text = blocks.map((b) => `${hex(b.network)}-${b.prefix}`).join("\n");
  const path = `${store.lockPath}.blocks`;
  const old = await Deno.readTextFile(path).catch(() => undefined);
  if (old !== text) await Deno.writeTextFile(path, text);
}

/** ADD: one address per range, then the static `addresses`; routes and dns from the conf. */
export async function clusterAdd(conf: ClusterConf, ctx: DelegateContext): Promise<CniResult> {
  const owner = ownerOf(conf, ctx);
  return await withEtcd(conf, async (etcd) => {
    const lease = await nodeLease(conf);
    const ips: CniIpConfig[] = [];
    const made: Array<[ClusterStore, IP]> = [];
    try {
      await replayJournal(conf, etcd);
      for (const r of conf.ranges) {
        const store = storeFor(etcd, conf, r, owner, lease);
        const { ip, fresh } = await addressFor(conf, store, r, owner);
        if (fresh) made.push([store, ip]);
        ips.push(ipConfig(conf, r, ip));
      }
    } catch (err) {
      // Undo: an ADD that fails holds nothing (best effort: etcd may be gone; DEL retries).
      for (const [store, ip] of made) await store.release(ip).catch(() => {});
      throw cniError(err, `Cannot allocate from "${conf.name}"`);
    }
    for (const a of conf.addresses) ips.push(a.gateway ? { ...a } : { address: a.address });
    const result: CniResult = { cniVersion: "1.1.0", ips };
    if (conf.routes) result.routes = conf.routes;
    if (conf.dns) result.dns = conf.dns;
    return result;
  });
}

/** The result entry of one address; the gateway only on addresses of its family. */
function ipConfig(conf: ClusterConf, r: PoolRange, ip: IP): CniIpConfig {
  const out: CniIpConfig = { address: formatCidr(ip, r.subnet.prefix) };
  if (conf.gateway && conf.gateway.family === ip.family) out.gateway = formatIp(conf.gateway);
  return out;
}

/** The distinct address spaces of a conf. */
export function spacesOf(conf: ClusterConf): string[] {
  return [...new Set(conf.ranges.map((r) => spaceOf(conf, r)))];
}

/** DEL: releases the attachment's records; etcd unreachable → journaled, success. */
export async function clusterDel(conf: ClusterConf, ctx: DelegateContext): Promise<void> {
  const owner = ownerOf(conf, ctx);
  const spaces = spacesOf(conf);
  await withEtcd(conf, async (etcd) => {
    try {
      await replayJournal(conf, etcd);
      for (const space of spaces) {
        await storeFor(etcd, conf, undefined, owner, undefined, space).releaseByID(
          owner.containerId,
          owner.ifname,
        );
      }
    } catch (err) {
      if (!(err instanceof EtcdUnavailableError)) {
        throw cniError(err, `Cannot release the addresses of "${owner.containerId}"`);
      }
      await journalAppend(journalDir(conf.dataDir, conf.nodeName), {
        endpoints: conf.etcd.endpoints,
        prefix: conf.etcd.prefix,
        spaces,
        containerId: owner.containerId,
        ifname: owner.ifname,
        t: Date.now(),
      });
    }
  });
}

/** CHECK: every range holds an address of the attachment. */
export async function clusterCheck(conf: ClusterConf, ctx: DelegateContext): Promise<void> {
  const owner = ownerOf(conf, ctx);
  await withEtcd(conf, async (etcd) => {
    for (const r of conf.ranges) {
      let held: IP[];
      try {
        held = await storeFor(etcd, conf, r, owner).getByID(owner.containerId, owner.ifname);
      } catch (err) {
        throw cniError(err, `Cannot read the addresses of "${owner.containerId}"`);
      }
      if (!held.some((ip) => contains(r.subnet, ip))) {
        throw new CniError(
          Code.UnknownContainer,
          `No address of range "${r.text}" is reserved for "${owner.containerId}"`,
        );
      }
    }
  });
}

/** GC: releases this node's records whose attachment is not valid. @returns them */
export async function clusterGc(conf: ClusterConf, ctx: DelegateContext): Promise<IP[]> {
  const valid = new Set(
    validAttachments(ctx.raw).map((a) => `${a.containerID.trim()}/${a.ifname}`),
  );
  const released: IP[] = [];
  await withEtcd(conf, async (etcd) => {
    try {
      await replayJournal(conf, etcd);
      const owner = { containerId: "", ifname: "", pod: "", node: conf.nodeName };
      for (const space of spacesOf(conf)) {
        const store = storeFor(etcd, conf, undefined, owner, undefined, space);
        for (const rec of await store.records()) {
          if (rec.node !== conf.nodeName || valid.has(`${rec.containerId}/${rec.ifname}`)) continue;
          const ip = parseIp(rec.ip, "record");
          await store.release(ip);
          released.push(ip);
        }
      }
    } catch (err) {
      throw cniError(err, `Cannot garbage-collect "${conf.name}"`);
    }
  });
  return released;
}

/** STATUS: etcd answers. */
export async function clusterStatus(conf: ClusterConf): Promise<void> {
  try {
    await withEtcd(conf, (etcd) => etcd.range(`${conf.etcd.prefix}/pool/`, { limit: 1 }));
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    throw new CniError(Code.NotAvailable, `The cluster IPAM's etcd is not available: ${text}`);
  }
}

function delegate(type: string): BuiltinDelegate<ClusterConf> {
  return {
    type,
    parseConf: (raw) => parseClusterConf(raw),
    add: clusterAdd,
    del: clusterDel,
    check: clusterCheck,
    gc: async (conf, ctx) => {
      await clusterGc(conf, ctx);
    },
    status: (conf) => clusterStatus(conf),
  };
}

/** The cluster IPAM as Whereabouts (type `whereabouts`). */
export const whereabouts: BuiltinDelegate<ClusterConf> = delegate("whereabouts");

/** The cluster IPAM under podplex's own name (type `podplex-ipam`). */
export const podplexIpam: BuiltinDelegate<ClusterConf> = delegate("podplex-ipam");
