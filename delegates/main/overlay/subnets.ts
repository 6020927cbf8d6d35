/**
 * A node's subnet lease on etcd: reading the network config and every lease in one
 * transaction, and taking or keeping the node's subnet by compare-and-swap under a TTL lease
 * (flannel's LocalManager.tryAcquireLease, in podplex's words):
 *
 * 1. The node's own lease (found by `PodplexNode`, or by PublicIP for a lease without one) is
 *    kept when it still fits the config: renewed as it is when it says what the node would
 *    publish, else rewritten under a fresh lease with a compare on its mod revision.
 * 2. Otherwise the subnet the node had before (`previous`, from its state file) when it is
 *    free, else one of the first 100 free subnets at random; created with a compare that the
 *    key does not exist. Two nodes racing for one subnet: one transaction wins, the other
 *    lists again and picks another. Keys of one family are `network-len` of one length, so
 *    distinct keys are distinct subnets; a dual-stack key (`v4&v6`) holds one subnet of each
 *    family, so its create also compares that no subnet key was written since the list
 *    (a racing node's lease, whichever family it shares, makes it list again).
 *
 * Every write is safe to repeat (a retried create that had committed is found in step 1).
 *
 * @module
 */
import { CniError, Code } from "../../../conf/errors.ts";
import { formatCidr, tryParseCidr } from "../../../conf/ip.ts";
import { cniError, type Compare, type EtcdClient } from "../../../clients/etcd/client.ts";
import {
  type BackendType,
  configKey,
  familiesOf,
  type Family,
  freeSubnets,
  leaseFamily,
  leaseValue,
  type NetworkConfig,
  networkConfigJson,
  type NodeAttrs,
  parseLease,
  parseNetworkConfig,
  rangeOf,
  sameAttrs,
  subnetFits,
  subnetKey,
  type SubnetLease,
  subnetsPrefix,
} from "./network.ts";
import type { Cidr } from "../../../conf/ip.ts";

/** The config and the leases, read at one revision. */
export interface ClusterView {
  config: NetworkConfig;
  leases: SubnetLease[];
  revision: number;
}

/** What a node wants its config to be when etcd has none yet. */
export interface ConfigSeed {
  /** The IPv4 network (`Network`); absent: `EnableIPv4` false. */
  network?: string;
  subnetLen?: number;
  /** The IPv6 network (`IPv6Network`, `EnableIPv6` true). */
  ipv6Network?: string;
  ipv6SubnetLen?: number;
  vni: number;
  port: number;
  backend?: BackendType;
  directRouting?: boolean;
}

/** Options of {@linkcode acquireSubnet}. */
export interface AcquireOptions {
  /** TTL of the etcd lease the key is attached to. */
  ttlSec: number;
  /** The subnets the node had before (`10.244.3.0/24`, an IPv6 one), tried first when free. */
  previous?: string[];
  /** The only subnets the node may take (the Node's `spec.podCIDRs`), by family. */
  fixed?: string[];
  /** A view read just before (saves one read); the loop reads again after a lost race. */
  view?: ClusterView;
}

/** A node's lease. */
export interface NodeLease {
  lease: SubnetLease;
  /** The etcd lease id to keep alive ("0": a reservation). */
  leaseId: string;
  /** Whether this call wrote the key (false: it was there and only renewed). */
  wrote: boolean;
}

/** A node's lease with the view it was taken in. */
export interface Acquired extends NodeLease {
  view: ClusterView;
}

const RACE_RETRIES = 20;

/**
 * Reads the config (creating it from `seed` when absent and a seed is given) and every lease.
 *
 * @throws {CniError} 7 when there is no config and no seed, or the config is invalid or
 *   differs from the seed's network; 11 when etcd is unreachable
 */
export async function readView(
  etcd: EtcdClient,
  prefix: string,
  seed?: ConfigSeed,
): Promise<ClusterView> {
  const key = configKey(prefix);
  try {
    const r = await etcd.txn({
      compare: [],
      success: [{ range: { key } }, { range: { key: subnetsPrefix(prefix), prefix: true } }],
    });
    const [cfgOp, subOp] = r.responses;
    let cfgText = "range" in cfgOp ? cfgOp.range.kvs[0]?.value : undefined;
    if (cfgText === undefined) cfgText = await seedConfig(etcd, key, seed);
    const config = parseNetworkConfig(jsonOf(cfgText, key), `etcd key ${key}`);
    if (seed) checkSeed(config, seed, key);
    const kvs = "range" in subOp ? subOp.range.kvs : [];
    const leases = kvs.map(parseLease).filter((l): l is SubnetLease => l !== undefined);
    return { config, leases, revision: r.revision };
  } catch (err) {
    throw cniError(err, `Cannot read the cluster network under "${prefix}"`);
  }
}

function jsonOf(text: string, key: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new CniError(Code.InvalidConfig, `Invalid network config in etcd key ${key}: not JSON`);
  }
}

/** Writes the seed's config if the key is still absent; the config etcd then holds. */
async function seedConfig(etcd: EtcdClient, key: string, seed?: ConfigSeed): Promise<string> {
  if (!seed) {
    throw new CniError(
      Code.InvalidConfig,
      `No network config in etcd key ${key}, and no "network" in the conf to create it from`,
    );
  }
  const value = networkConfigJson(seed);
  const r = await etcd.txn({
    compare: [{ key, target: "CREATE", result: "EQUAL", createRevision: 0 }],
    success: [{ put: { key, value } }],
    failure: [{ range: { key } }],
  });
  if (r.succeeded) return value;
  const op = r.responses[0];
  return ("range" in op ? op.range.kvs[0]?.value : undefined) ?? value;
}

/** A conf's networks must be etcd's: two nodes must never disagree on the cluster network. */
function checkSeed(cfg: NetworkConfig, seed: ConfigSeed, key: string): void {
  const check = (field: string, text: string | undefined, family: Family) => {
    if (text === undefined) return;
    const want = tryParseCidr(text);
    const r = rangeOf(cfg, family);
    const have = r ? formatCidr(r.network.network, r.network.prefix) : undefined;
    if (
      !want || !r || want.network.value !== r.network.network.value ||
      want.prefix !== r.network.prefix
    ) {
      throw new CniError(
        Code.InvalidConfig,
        `Invalid "${field}": "${text}" differs from ${
          have ? `"${have}"` : `no IPv${family} network`
        } in etcd key ${key}`,
      );
    }
  };
  check("network", seed.network, 4);
  check("ipv6Network", seed.ipv6Network, 6);
}

/** The node's lease in a list: by node name, else (a flanneld lease) by PublicIP(v6). */
export function findOwn(leases: SubnetLease[], a: NodeAttrs): SubnetLease | undefined {
  return leases.find((l) => l.node === a.node) ??
    leases.find((l) =>
      l.node === undefined &&
      ((l.publicIp !== "0.0.0.0" && l.publicIp === a.publicIp) ||
        (l.publicIpv6 !== undefined && l.publicIpv6 === a.publicIpv6))
    );
}

/** Whether a lease holds exactly the config's families, each fitting its range. */
function leaseFits(cfg: NetworkConfig, l: SubnetLease): boolean {
  return ([4, 6] as const).every((f) => {
    const r = rangeOf(cfg, f);
    const part = leaseFamily(l, f);
    return r ? !!part && subnetFits(r, part.subnet) : !part;
  });
}

/**
 * Takes or keeps the node's subnet; see the module doc.
 *
 * @throws {CniError} 103 when no subnet is free, 105 when `fixed` is another node's, 11 when
 *   etcd is unreachable or the races never settle, 7 for a bad config
 */
export async function acquireSubnet(
  etcd: EtcdClient,
  prefix: string,
  attrs: NodeAttrs,
  o: AcquireOptions,
): Promise<Acquired> {
  let granted: string | undefined;
  const grant = async () => granted ??= (await etcd.leaseGrant(o.ttlSec)).id;
  let view = o.view;
  try {
    for (let attempt = 0; attempt < RACE_RETRIES; attempt++) {
      view ??= await readView(etcd, prefix);
      const got = await tryOnce(etcd, prefix, view, attrs, o, grant);
      if (got) {
        if (granted && got.leaseId !== granted) await etcd.leaseRevoke(granted);
        return { ...got, view };
      }
      view = undefined;
    }
  } catch (err) {
    if (granted) await etcd.leaseRevoke(granted).catch(() => {});
    throw cniError(err, `Cannot lease a subnet for node "${attrs.node}"`);
  }
  if (granted) await etcd.leaseRevoke(granted).catch(() => {});
  throw new CniError(
    Code.TryAgainLater,
    `Cannot lease a subnet for node "${attrs.node}": lost ${RACE_RETRIES} races in a row`,
  );
}

/** One attempt; undefined when a compare failed (someone else wrote meanwhile). */
async function tryOnce(
  etcd: EtcdClient,
  prefix: string,
  view: ClusterView,
  attrs: NodeAttrs,
  o: AcquireOptions,
  grant: () => Promise<string>,
): Promise<NodeLease | undefined> {
  const own = findOwn(view.leases, attrs);
  const fixed = (o.fixed ?? []).map((t) => tryParseCidr(t))
    .filter((c): c is Cidr => c !== undefined && rangeOf(view.config, c.family) !== undefined);
  const isFixed = (l: SubnetLease) =>
    fixed.every((c) => {
      const part = leaseFamily(l, c.family);
      return !!part && sameNet(part.subnetText, c);
    });
  if (own && leaseFits(view.config, own) && isFixed(own)) {
    return await keepOwn(etcd, own, attrs, grant);
  }
  if (own) {
    // Outside the config now (or not the podCIDR): give it up before taking another.
    const r = await etcd.txn({
      compare: [{ key: own.key, target: "MOD", result: "EQUAL", modRevision: own.modRevision }],
      success: [{ delete: { key: own.key } }],
    });
    if (!r.succeeded) return undefined;
  }
  const others = view.leases.filter((l) => l !== own);
  const picked = new Map<Family, Cidr>();
  for (const f of familiesOf(view.config)) {
    picked.set(f, pickSubnet(view.config, f, others, attrs, o));
  }
  const key = subnetKey(prefix, picked.get(4), picked.get(6));
  const leaseId = await grant();
  const compare: Compare[] = [{ key, target: "CREATE", result: "EQUAL", createRevision: 0 }];
  if (picked.size > 1) {
    // Two families in one key: keys differ while a subnet of one family is shared, so a
    // create only wins when no lease was written since the view was read.
    const start = subnetsPrefix(prefix);
    compare.push({
      key: start,
      rangeEnd: prefixEnd(start),
      target: "MOD",
      result: "LESS",
      modRevision: view.revision + 1,
    });
  }
  const r = await etcd.txn({
    compare,
    success: [{ put: { key, value: leaseValue(attrs), lease: leaseId } }],
  });
  if (!r.succeeded) return undefined;
  const lease = parseLease({
    key,
    value: leaseValue(attrs),
    createRevision: r.revision,
    modRevision: r.revision,
    version: 1,
    lease: leaseId,
  })!;
  return { lease, leaseId, wrote: true };
}

/** The end of etcd's range of keys starting with `p` (its last byte plus one). */
function prefixEnd(p: string): string {
  return p.slice(0, -1) + String.fromCharCode(p.charCodeAt(p.length - 1) + 1);
}

/** Keeps the node's own key: renewed when unchanged and alive, else rewritten under CAS. */
async function keepOwn(
  etcd: EtcdClient,
  own: SubnetLease,
  attrs: NodeAttrs,
  grant: () => Promise<string>,
): Promise<NodeLease | undefined> {
  const reservation = own.leaseId === "0";
  if (sameAttrs(own, attrs)) {
    if (reservation) return { lease: own, leaseId: "0", wrote: false };
    if (await etcd.leaseKeepAliveOnce(own.leaseId) > 0) {
      return { lease: own, leaseId: own.leaseId, wrote: false };
    }
  }
  const leaseId = reservation ? "0" : await grant();
  const value = leaseValue(attrs);
  const r = await etcd.txn({
    compare: [{ key: own.key, target: "MOD", result: "EQUAL", modRevision: own.modRevision }],
    success: [{ put: { key: own.key, value, lease: reservation ? undefined : leaseId } }],
  });
  if (!r.succeeded) return undefined;
  // The old lease holds nothing now (its key moved to the new one): let it go at once.
  if (!reservation && own.leaseId !== leaseId) await etcd.leaseRevoke(own.leaseId);
  const kv = {
    key: own.key,
    value,
    createRevision: 0,
    modRevision: r.revision,
    version: 0,
    lease: leaseId,
  };
  return { lease: parseLease(kv)!, leaseId, wrote: true };
}

function sameNet(text: string, c: { network: { value: bigint }; prefix: number }): boolean {
  const a = tryParseCidr(text);
  return !!a && a.network.value === c.network.value && a.prefix === c.prefix;
}

function pickSubnet(
  cfg: NetworkConfig,
  family: Family,
  others: SubnetLease[],
  attrs: NodeAttrs,
  o: AcquireOptions,
): Cidr {
  const range = rangeOf(cfg, family)!;
  const taken = others.map((l) => leaseFamily(l, family)?.subnet).filter((c) => c !== undefined);
  const ofFamily = (texts: string[] | undefined) =>
    (texts ?? []).find((t) => tryParseCidr(t)?.family === family);
  const free = (text: string | undefined) => {
    const c = text ? tryParseCidr(text) : undefined;
    if (!c) return undefined;
    const sn = { ...c, ip: c.network };
    return subnetFits(range, sn) && !taken.some((t) => t.network.value === sn.network.value)
      ? sn
      : undefined;
  };
  const fixed = ofFamily(o.fixed);
  if (o.fixed?.length) {
    if (!fixed) {
      throw new CniError(
        Code.InvalidConfig,
        `The podCIDRs ${JSON.stringify(o.fixed)} of node "${attrs.node}" have no IPv${family} ` +
          `subnet, and the cluster network leases IPv${family}`,
      );
    }
    const sn = free(fixed);
    if (sn) return sn;
    const holder = others.find((l) => {
      const part = leaseFamily(l, family);
      return part && sameNet(part.subnetText, tryParseCidr(fixed)!);
    });
    throw new CniError(
      holder ? Code.AlreadyExists : Code.InvalidConfig,
      holder
        ? `The podCIDR "${fixed}" of node "${attrs.node}" is leased by ${
          holder.node ?? holder.publicIp
        }`
        : `The podCIDR "${fixed}" of node "${attrs.node}" is not a subnet of the cluster network`,
    );
  }
  const prev = free(ofFamily(o.previous));
  if (prev) return prev;
  const candidates = freeSubnets(range, taken);
  if (candidates.length === 0) {
    throw new CniError(
      Code.AddressExhausted,
      `No free /${range.subnetLen} left in ${
        formatCidr(range.network.network, range.network.prefix)
      } for node "${attrs.node}"`,
    );
  }
  return candidates[Math.floor(Math.random() * candidates.length)];
}

/**
 * Gives the node's subnet up: revokes its etcd lease (its key goes with it) or, for a
 * reservation, leaves the key. A lease already gone is fine.
 */
export async function releaseSubnet(etcd: EtcdClient, leaseId: string): Promise<void> {
  if (leaseId && leaseId !== "0") await etcd.leaseRevoke(leaseId);
}
