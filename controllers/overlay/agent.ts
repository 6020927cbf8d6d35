/**
 * The node agent of the cluster network (what flanneld does), run by the overlay controller
 * (`overlay.ts`, `podplex serve --cluster-network FILE`):
 *
 * 1. joins (see `join.ts`), retrying with back-off while etcd is unreachable;
 * 2. keeps the subnet's etcd lease alive (every TTL/3) and joins again when etcd says it is
 *    gone, or when the node's key is deleted;
 * 3. watches the subnet leases from the revision it listed at and keeps the VTEP's routes,
 *    neighbours and FDB entries exactly equal to them after every batch of events; after a
 *    broken watch it resumes from the next revision, and when that history was compacted it
 *    re-lists and replaces what it knew (`Watcher.onResync`);
 * 4. every `resyncSec` re-lists anyway and re-checks the kernel (a deleted entry, or a
 *    deleted VTEP, comes back);
 * 5. listens on `<stateDir>/agent.sock` once joined, so CNI calls know it runs.
 *
 * Stopping leaves the lease in etcd (it expires after its TTL unless the node comes back and
 * keeps it): a restarted node keeps its subnet. Leaving the cluster is `podplex net leave`.
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import { tryParseCidr } from "../../conf/ip.ts";
import { Netlink } from "../../ffi/mod.ts";
import { EtcdClient, type KeepAlive } from "../../clients/etcd/client.ts";
import { Watcher, type WatchEvent } from "../../clients/etcd/watch.ts";
import { type ClusterNetConf, etcdOptions } from "../../delegates/main/overlay/conf.ts";
import {
  joinOnce,
  type JoinResult,
  type PeerContext,
  programPeers,
  withJoinLock,
} from "../../delegates/main/overlay/join.ts";
import {
  parseLease,
  subnetKey,
  type SubnetLease,
  subnetsPrefix,
} from "../../delegates/main/overlay/network.ts";
import { type NodeState, readNodeState } from "../../delegates/main/overlay/node_state.ts";
import { readView } from "../../delegates/main/overlay/subnets.ts";
import { type Cancel, type Clock, systemClock } from "../controller.ts";
import { listenAlive } from "./alive.ts";
import { loadClusterNetConf } from "./conf_file.ts";

/** Options of {@linkcode startNodeAgent}. */
export interface NodeAgentOptions {
  /** One line per event worth telling (joins, entries changed, etcd trouble). */
  log?: (line: string) => void;
  /** The Node's `spec.podCIDRs`, when the subnets come from Kubernetes. */
  podCidr?: () => Promise<string[] | undefined>;
  /** Its time (back-off, resync timer); the system clock by default. */
  clock?: Clock;
}

/**
 * Gives the `podCidr` source of a conf that asks for one (`kubeSubnetMgr`): the composition
 * root passes it, so that this floor needs no Kubernetes client of its own.
 */
export type PodCidrSource = (
  conf: ClusterNetConf,
) => (() => Promise<string[] | undefined>) | undefined;

/** A running agent. */
export interface NodeAgent {
  readonly conf: ClusterNetConf;
  /** The node's state after the last join (undefined until the first). */
  readonly state: NodeState | undefined;
  /** Resolves after the first join. */
  readonly ready: Promise<void>;
  /** Re-lists the leases and puts the kernel in line with them (after what is queued). */
  resync(): Promise<void>;
  /** Stops watching and refreshing; the lease stays in etcd. */
  stop(): Promise<void>;
}

/**
 * Starts the agent for the conf at `path`; the first join runs in the background (see
 * `ready`), so a daemon starts while etcd is still down.
 *
 * @throws {CniError} code 7 for a bad conf (nothing is started then)
 */
export async function startNodeAgent(
  path: string,
  o: NodeAgentOptions = {},
  podCidrs?: PodCidrSource,
): Promise<NodeAgent> {
  const conf = await loadClusterNetConf(path);
  if (conf.kubeSubnetMgr && !o.podCidr) {
    const source = podCidrs?.(conf);
    if (!source) {
      throw new CniError(
        Code.InvalidConfig,
        `Invalid "kubeSubnetMgr" in "${path}": no Kubernetes API to read the Node's podCIDR from`,
      );
    }
    o = { ...o, podCidr: source };
  }
  const etcd = new EtcdClient(await etcdOptions(conf));
  const agent = new Agent(conf, etcd, o);
  agent.start();
  return agent;
}

class Agent implements NodeAgent {
  readonly conf: ClusterNetConf;
  readonly ready: Promise<void>;
  readonly #etcd: EtcdClient;
  readonly #o: NodeAgentOptions;
  readonly #nl = Netlink.open();
  readonly #leases = new Map<string, SubnetLease>();
  #state: NodeState | undefined;
  #peers: PeerContext | undefined;
  /** The refusals last logged (each is told once, not at every resync). */
  #refused = "";
  #ka: KeepAlive | undefined;
  #watch: Watcher | undefined;
  #alive: { close(): void } | undefined;
  #timer: Cancel | undefined;
  #stopped = false;
  #queue: Promise<void> = Promise.resolve();
  #joined!: () => void;
  #main: Promise<void> | undefined;
  readonly #wake = new AbortController();
  readonly #clock: Clock;

  constructor(conf: ClusterNetConf, etcd: EtcdClient, o: NodeAgentOptions) {
    this.conf = conf;
    this.#etcd = etcd;
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.ready = new Promise((r) => this.#joined = r);
  }

  get state(): NodeState | undefined {
    return this.#state;
  }

  #log(line: string): void {
    this.#o.log?.(`cluster network "${this.conf.name}": ${line}`);
  }

  start(): void {
    this.#main = this.#run();
  }

  async #run(): Promise<void> {
    const first = await this.#joinUntilDone();
    if (!first || this.#stopped) return;
    this.#watch = new Watcher(
      this.#etcd,
      {
        key: subnetsPrefix(this.conf.prefix),
        prefix: true,
        startRevision: first.view.revision + 1,
      },
      {
        onEvents: (events) => this.#serial(() => this.#onEvents(events)),
        onResync: (kvs) =>
          this.#serial(() => this.#replace(kvs.map(parseLease).filter((l) => l !== undefined))),
        onError: (err) => this.#log(`etcd watch: ${err.message}; reconnecting`),
      },
    );
    try {
      this.#alive = await listenAlive(this.conf.stateDir);
    } catch (err) {
      this.#log(`${(err as Error).message}: CNI calls will not know this agent runs`);
    }
    const every = this.conf.resyncSec * 1000;
    this.#timer = this.#clock.every(every, () => void this.resync());
    this.#joined();
  }

  /** Runs `fn` after everything queued before it (watch batches, resyncs, re-joins). */
  #serial(fn: () => Promise<void> | void): Promise<void> {
    const next = this.#queue.then(fn).catch((err) => {
      this.#log(err instanceof Error ? err.message : String(err));
    });
    this.#queue = next;
    return next;
  }

  /** Joins, retrying with back-off (0.5 s doubling to 10 s) until it works or stop. */
  async #joinUntilDone(): Promise<JoinResult | undefined> {
    let backoff = 500;
    while (!this.#stopped) {
      try {
        const prev = this.#state ?? await readNodeState(this.conf.stateDir);
        const podCidrs = await this.#o.podCidr?.();
        const r = await withJoinLock(
          this.conf.stateDir,
          () => joinOnce(this.#etcd, this.conf, this.#nl, prev, { podCidrs }),
        );
        this.#applyJoin(r);
        return r;
      } catch (err) {
        if (this.#stopped) break;
        const msg = err instanceof Error ? err.message : String(err);
        this.#log(`cannot join: ${msg}; trying again in ${backoff} ms`);
        await this.#clock.sleep(backoff, this.#wake.signal);
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
    return undefined;
  }

  #applyJoin(r: JoinResult): void {
    const s = r.state;
    const prevLease = this.#state?.leaseId;
    this.#state = s;
    this.#peers = r.peers;
    this.#tellRefused(r.report.refused);
    this.#leases.clear();
    for (const l of r.view.leases) this.#leases.set(l.key, l);
    if (s.leaseId !== prevLease || !this.#ka) {
      this.#ka?.stop();
      this.#ka = s.leaseId === "0" ? undefined : this.#etcd.keepAlive(
        s.leaseId,
        this.conf.leaseTtlSec,
        () => void this.#serial(() => this.#rejoin("etcd says the node's lease is gone")),
      );
    }
    const remotes = this.#leases.size - 1;
    this.#log(
      `node "${s.node}" holds ${[s.subnet, s.subnet6].filter(Boolean).join(" + ")} ` +
        `(${r.wrote ? "written" : "kept"}, lease ${s.leaseId}), ` +
        `${
          [
            s.vtepName && `VTEP ${s.vtepName} ${s.vtepMac}`,
            s.vtep6Name && `VTEP ${s.vtep6Name} ${s.vtep6Mac}`,
          ]
            .filter(Boolean).join(", ") || s.backend
        } MTU ${s.mtu}, ` +
        `${remotes} other node(s)`,
    );
  }

  async #rejoin(why: string): Promise<void> {
    if (this.#stopped) return;
    this.#log(`${why}: joining again`);
    await this.#joinUntilDone();
  }

  async #onEvents(events: WatchEvent[]): Promise<void> {
    const own = this.#ownKey();
    let lostOwn = false;
    for (const e of events) {
      if (e.type === "DELETE") {
        this.#leases.delete(e.kv.key);
        if (e.kv.key === own) lostOwn = true;
        continue;
      }
      const l = parseLease(e.kv);
      if (l) this.#leases.set(l.key, l);
      else this.#leases.delete(e.kv.key);
    }
    if (lostOwn) return await this.#rejoin("the node's subnet key was deleted");
    this.#sync();
  }

  #replace(leases: SubnetLease[]): void {
    this.#leases.clear();
    for (const l of leases) this.#leases.set(l.key, l);
    this.#log(`resynced from a full list: ${leases.length} lease(s)`);
    if (!this.#ownPresent()) {
      return void this.#serial(() => this.#rejoin("the node's lease is not listed"));
    }
    this.#sync();
  }

  resync(): Promise<void> {
    return this.#serial(() => this.#resync());
  }

  async #resync(): Promise<void> {
    if (this.#stopped || !this.#state) return; // not joined yet: the join lists
    const view = await readView(this.#etcd, this.conf.prefix);
    this.#leases.clear();
    for (const l of view.leases) this.#leases.set(l.key, l);
    if (!this.#ownPresent()) return await this.#rejoin("the node's lease is not listed");
    this.#sync();
  }

  #ownKey(): string | undefined {
    const s = this.#state;
    if (!s) return undefined;
    const sn = s.subnet ? tryParseCidr(s.subnet) : undefined;
    const sn6 = s.subnet6 ? tryParseCidr(s.subnet6) : undefined;
    return sn || sn6 ? subnetKey(this.conf.prefix, sn, sn6) : undefined;
  }

  #ownPresent(): boolean {
    const key = this.#ownKey();
    return key !== undefined && this.#leases.get(key)?.node === this.conf.node;
  }

  /** Puts the kernel in line with the leases known now. */
  #sync(): void {
    if (this.#stopped || !this.#peers || !this.#state) return;
    const r = programPeers(this.#nl, this.#peers, [...this.#leases.values()]);
    this.#tellRefused(r.refused);
    if (r.added.length || r.removed.length) {
      const parts = [];
      if (r.added.length) parts.push(`added ${r.added.join(", ")}`);
      if (r.removed.length) parts.push(`removed ${r.removed.join(", ")}`);
      this.#log(`entries ${parts.join("; ")} (${this.#leases.size - 1} remote node(s))`);
    }
  }

  #tellRefused(refused: string[]): void {
    const text = refused.join("; ");
    if (text && text !== this.#refused) this.#log(`refused: ${text}`);
    this.#refused = text;
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#wake.abort();
    this.#timer?.();
    this.#ka?.stop();
    this.#alive?.close();
    await this.#watch?.close();
    await this.#main?.catch(() => {});
    await this.#queue;
    this.#nl.close();
    this.#etcd.close();
  }
}

/**
 * Starts one agent per conf file (`podplex serve --cluster-network FILE...`).
 *
 * @throws {CniError} code 7 for a bad conf (the others started are stopped again)
 */
export async function startNodeAgents(
  paths: string[],
  o: NodeAgentOptions,
  podCidrs?: PodCidrSource,
): Promise<{ agents: NodeAgent[]; stop(): Promise<void> }> {
  const agents: NodeAgent[] = [];
  const stop = async () => void await Promise.all(agents.map((a) => a.stop()));
  try {
    for (const p of paths) agents.push(await startNodeAgent(p, o, podCidrs));
  } catch (err) {
    await stop();
    throw err;
  }
  return { agents, stop };
}
