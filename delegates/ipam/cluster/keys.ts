/**
 * Where the cluster IPAM keeps things in etcd. Everything lives under a prefix (default
 * `/podplex/ipam/v1`), in *address spaces*: one per `network_name` when overlapping ranges
 * are checked (the default: two ranges of one network that overlap share their addresses,
 * as Whereabouts' cluster-wide reservations do), else one per network and range.
 *
 * ```
 * <P>/pool/<space>                         pool description (for `podplex ipam ls`)
 * <P>/s/<space>/ip/<hex>                   an address's record: owner JSON
 * <P>/s/<space>/own/<cid>/<ifname>/<hex>   the same record, indexed by attachment (DEL)
 * <P>/s/<space>/blk/<hex>-<len>            a block's claim: {"node": ...}
 * <P>/s/<space>/aff/<node>/<hex>-<len>     the block, indexed by node
 * <P>/node/<node>                          the node's liveness, under its daemon's lease
 * ```
 *
 * `<hex>` is the address as fixed-width hex (8 digits for IPv4, 32 for IPv6), so keys sort
 * as addresses do and a block is one key range.
 *
 * @module
 */
import { type Cidr, formatCidr, type IP, lastAddress } from "../../../conf/ip.ts";
import type { ClusterConf, PoolRange } from "./conf.ts";

/** Fixed-width hex of an address. */
export function hex(ip: IP): string {
  return ip.value.toString(16).padStart(ip.family === 4 ? 8 : 32, "0");
}

/** The address of a {@linkcode hex} key part. */
export function unhex(text: string): IP {
  return { family: text.length === 8 ? 4 : 6, value: BigInt(`0x${text}`) };
}

/** The address space of a range (see the module doc). */
export function spaceOf(conf: ClusterConf, r: PoolRange): string {
  const net = encodeURIComponent(conf.networkName);
  if (conf.overlapping) return `n=${net}`;
  return `p=${net}=${encodeURIComponent(formatCidr(r.subnet.network, r.subnet.prefix))}`;
}

/** The owner of an address, as its record holds it. */
export interface Owner {
  containerId: string;
  ifname: string;
  /** `namespace/name`, empty when the runtime gave none. */
  pod: string;
  node: string;
}

/** An address's record (what `ip/<hex>` holds). */
export interface AddressRecord extends Owner {
  ip: string;
  /** The pool range it came from. */
  range: string;
  /** Milliseconds since the epoch when reserved. */
  t: number;
}

/** Keys of one address space. */
export class SpaceKeys {
  readonly root: string;
  readonly space: string;
  readonly base: string;

  /** @param root the etcd prefix; @param space from {@linkcode spaceOf} */
  constructor(root: string, space: string) {
    this.root = root;
    this.space = space;
    this.base = `${root}/s/${space}`;
  }

  /** The pool description key. */
  pool(): string {
    return `${this.root}/pool/${this.space}`;
  }

  /** An address's record. */
  ip(ip: IP): string {
    return `${this.base}/ip/${hex(ip)}`;
  }

  /** Prefix of every address record. */
  ipPrefix(): string {
    return `${this.base}/ip/`;
  }

  /** [start, end) keys of the records of addresses lo..hi. */
  ipSpan(lo: IP, hi: IP): [string, string] {
    return [this.ip(lo), `${this.ip(hi)}\0`];
  }

  /** Prefix of an attachment's owner index. */
  ownPrefix(containerId: string, ifname: string): string {
    return `${this.base}/own/${containerId}/${ifname}/`;
  }

  /** An attachment's owner index entry for `ip`. */
  own(containerId: string, ifname: string, ip: IP): string {
    return `${this.ownPrefix(containerId, ifname)}${hex(ip)}`;
  }

  /** A block's claim. */
  block(b: Cidr): string {
    return `${this.base}/blk/${hex(b.network)}-${b.prefix}`;
  }

  /** Prefix of every block claim. */
  blockPrefix(): string {
    return `${this.base}/blk/`;
  }

  /** A node's index entry for block `b`. */
  affinity(node: string, b: Cidr): string {
    return `${this.affinityPrefix(node)}${hex(b.network)}-${b.prefix}`;
  }

  /** Prefix of a node's blocks. */
  affinityPrefix(node: string): string {
    return `${this.base}/aff/${encodeURIComponent(node)}/`;
  }
}

/** The node liveness key. */
export function nodeKey(root: string, node: string): string {
  return `${root}/node/${encodeURIComponent(node)}`;
}

/** Parses `<hex>-<len>` (the tail of a block or affinity key) into the block's CIDR. */
export function blockOfKey(key: string): Cidr | undefined {
  const m = /\/([0-9a-f]+)-(\d+)$/.exec(key);
  if (!m) return undefined;
  const network = unhex(m[1]);
  const prefix = Number(m[2]);
  return { ip: network, network, prefix, family: network.family };
}

/** A block's identity as a map key (`<hex>-<len>`, hex not padded). */
export function blockKey(b: Cidr): string {
  return `${b.network.value.toString(16)}-${b.prefix}`;
}

/** The last address of a block. */
export function blockEnd(b: Cidr): IP {
  return lastAddress(b);
}
