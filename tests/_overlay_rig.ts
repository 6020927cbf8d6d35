/**
 * Simulated nodes of podplex's cluster network for end-to-end tests: a real etcd (1 or 3
 * members, ports 23900-23949 unless `etcdPorts`), an underlay bridge in the host netns
 * (10.212.<r>.1/24, so that nodes reach etcd; with `underlay6` also `<base6>:<r>::1/64`),
 * N nodes (a netns each, `eth0` on the underlay, their own conf, state
 * and `podplex serve` daemon when started), pods (a netns each) ADDed by `bin/podplex` run
 * inside their node's netns as kubelet would.
 *
 * Names start with `ppf` (or `pp<tag>` with `tag`). Everything is removed on dispose, daemons killed, even on failure.
 *
 * @module
 */
import { EtcdClient } from "../clients/etcd/client.ts";
import { parseLease, type SubnetLease, subnetsPrefix } from "../delegates/main/overlay/network.ts";
import {
  desiredEntries,
  expectedState,
  type OverlayState,
  readOverlay,
} from "../delegates/main/overlay/sync.ts";
import { type NodeState, readNodeState } from "../delegates/main/overlay/node_state.ts";
import { Netlink } from "../ffi/mod.ts";
import { type EtcdCluster, startEtcd } from "./etcd_server.ts";
import { sourceSeen } from "./_net_probe.ts";
import { ppName, run, tryRun } from "./testutils.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** `bin/podplex` of this checkout. */
export const PODPLEX = `${ROOT}/bin/podplex`;

/** Options of {@linkcode OverlayRig.start}. */
export interface OverlayRigOptions {
  nodes?: number;
  members?: number;
  /** The IPv4 cluster network (default 10.208.0.0/16; null: none, an IPv6-only cluster). */
  network?: string | null;
  subnetLen?: number;
  /** The IPv6 cluster network (the conf's `ipv6Network`: dual stack or IPv6 only). */
  ipv6Network?: string;
  ipv6SubnetLen?: number;
  /**
   * An IPv6 underlay besides the IPv4 one: its first 32 bits (`fd31:0` gives
   * `fd31:0:<r>::/64`, the host `::1`, node i `::<10+i>`), addresses without DAD.
   */
  underlay6?: string;
  /**
   * With `underlay6`: the nodes' eth0 have no IPv4 address, and they reach etcd over IPv6
   * (an IPv6-only underlay; `ip` of a node is then "").
   */
  underlay6Only?: boolean;
  /** etcd's port range (default 23900-23949). */
  etcdPorts?: [number, number];
  /** More fields of every node's cluster conf (a function: of the node's dir). */
  conf?: Record<string, unknown> | ((dir: string) => Record<string, unknown>);
  /** Only some nodes' etcd endpoints: members by node index (default: all members). */
  endpointsOf?: (node: number) => number[];
  /** The name tag after `pp` (default `f`: the pre-existing tests' names). */
  tag?: string;
  /** The underlay's first two octets (default `10.212`). */
  underlayBase?: string;
}

/** One simulated node. */
export interface OverlayNode {
  index: number;
  name: string;
  ns: string;
  ip: string;
  /** The IPv6 underlay address (with `underlay6`). */
  ip6?: string;
  dir: string;
  /** The cluster network conf (`podplex-cluster`). */
  clusterConf: string;
  /** The podplex conflist whose clusterNetwork it is. */
  podplexConf: string;
  stateDir: string;
  agent?: Deno.ChildProcess;
  agentLog: string;
}

/** One pod. */
export interface OverlayPod {
  id: string;
  ns: string;
  node: number;
  /** The pod's first address (IPv4 unless the cluster is IPv6 only). */
  ip: string;
  /** Every address of the CNI result (`10.208.1.2`, `fd32:0:1::2`: no prefix). */
  ips?: string[];
}

/** A segment beyond the router: its bridge there, its /24 (and /64) less the last part. */
interface Segment {
  ns: string;
  bridge: string;
  seg: string;
  seg6?: string;
}

/** The rig; dispose it with `await using`. */
export class OverlayRig implements AsyncDisposable {
  readonly etcd: EtcdCluster;
  readonly nodes: OverlayNode[] = [];
  readonly pods: OverlayPod[] = [];
  readonly dir: string;
  readonly client: EtcdClient;
  readonly hostIp: string;
  readonly #underlay: string;
  readonly #o: OverlayRigOptions;
  readonly #octet: number;
  readonly #tag: string;
  #router: Segment | undefined;
  /** `10.212.<r>`: the underlay's /24. */
  readonly net24: string;
  /** `fd31:0:<r>:`: the IPv6 underlay's /64 less its last `:` (with `underlay6`). */
  readonly net64?: string;

  private constructor(
    etcd: EtcdCluster,
    dir: string,
    underlay: string,
    octet: number,
    o: OverlayRigOptions,
  ) {
    this.etcd = etcd;
    this.dir = dir;
    this.#underlay = underlay;
    this.#octet = octet;
    this.#tag = o.tag ?? "f";
    this.net24 = `${o.underlayBase ?? "10.212"}.${octet}`;
    this.hostIp = `${this.net24}.1`;
    if (o.underlay6) this.net64 = `${o.underlay6}:${octet.toString(16)}:`;
    this.#o = o;
    this.client = new EtcdClient({ endpoints: etcd.endpoints, totalTimeoutMs: 10000 });
  }

  /** Starts etcd, the underlay and the nodes (no daemon yet). */
  static async start(o: OverlayRigOptions = {}): Promise<OverlayRig> {
    const tag = o.tag ?? "f";
    const base = o.underlayBase ?? "10.212";
    const dir = await Deno.makeTempDir({ prefix: `pp${tag}-rig-` });
    const octet = 1 + Math.floor(Math.random() * 250);
    const underlay = ppName(`${tag}u`);
    await run("ip", "link", "add", underlay, "type", "bridge");
    let etcd: EtcdCluster | undefined;
    try {
      await run("ip", "addr", "add", `${base}.${octet}.1/24`, "dev", underlay);
      if (o.underlay6) {
        const a = `${o.underlay6}:${octet.toString(16)}::1/64`;
        await run("ip", "addr", "add", a, "dev", underlay, "nodad");
      }
      await run("ip", "link", "set", underlay, "up");
      etcd = await startEtcd({
        members: o.members ?? 1,
        clientHosts: [
          `${base}.${octet}.1`,
          ...(o.underlay6 ? [`[${o.underlay6}:${octet.toString(16)}::1]`] : []),
        ],
        portRange: o.etcdPorts ?? [23900, 23949],
      });
      const rig = new OverlayRig(etcd, dir, underlay, octet, o);
      for (let i = 0; i < (o.nodes ?? 3); i++) await rig.addNode();
      return rig;
    } catch (err) {
      await etcd?.stop();
      await tryRun("ip", "link", "del", underlay);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw err;
    }
  }

  /** The conf of node `i` (its cluster network conf fields). */
  confOf(i: number, name: string, dir: string): Record<string, unknown> {
    const members = this.#o.endpointsOf?.(i) ?? this.etcd.members.map((_, k) => k);
    const all = this.etcd.endpointsOn(
      this.#o.underlay6Only ? `[${this.net64}:1]` : this.hostIp,
    );
    return {
      cniVersion: "1.0.0",
      name: "cluster",
      type: "podplex-cluster",
      etcdEndpoints: members.map((k) => all[k]),
      ...(this.#o.network === null ? {} : { network: this.#o.network ?? "10.208.0.0/16" }),
      ...(this.#o.subnetLen ? { subnetLen: this.#o.subnetLen } : {}),
      ...(this.#o.ipv6Network ? { ipv6Network: this.#o.ipv6Network } : {}),
      ...(this.#o.ipv6SubnetLen ? { ipv6SubnetLen: this.#o.ipv6SubnetLen } : {}),
      node: name,
      iface: "eth0",
      dataDir: `${dir}/data`,
      ipam: { dataDir: `${dir}/leases` },
      etcdTimeoutMs: 3000,
      ...(typeof this.#o.conf === "function" ? this.#o.conf(dir) : this.#o.conf),
    };
  }

  /**
   * Adds a node beyond a router: a router netns (made once) on the underlay at `.2`, with a
   * second segment behind it (`<base>.<r+1>.0/24`, a bridge in the router) where the node's
   * eth0 is; the on-segment nodes and the host route that segment via the router. With
   * `underlay6` the same in IPv6 (the router `<net64>:2`, the segment `<base6>:<r+1>::/64`).
   */
  async addRoutedNode(): Promise<OverlayNode> {
    const seg = `${this.net24.replace(/\.\d+$/, "")}.${this.#octet + 1}`;
    const seg6 = this.#o.underlay6 && `${this.#o.underlay6}:${(this.#octet + 1).toString(16)}:`;
    if (!this.#router) {
      const r = ppName(`${this.#tag}r`);
      this.#router = { ns: r, bridge: "br1", seg, ...(seg6 ? { seg6 } : {}) };
      await run("ip", "netns", "add", r);
      const host = ppName(`${this.#tag}v`);
      await run("ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", r);
      await run("ip", "link", "set", host, "master", this.#underlay, "up");
      await run("ip", "-n", r, "addr", "add", `${this.net24}.2/24`, "dev", "eth0");
      await run("ip", "-n", r, "link", "add", "br1", "type", "bridge");
      await run("ip", "-n", r, "addr", "add", `${seg}.1/24`, "dev", "br1");
      if (seg6) await this.#routerIpv6(r, seg6);
      await run("ip", "-n", r, "link", "set", "eth0", "up");
      await run("ip", "-n", r, "link", "set", "br1", "up");
      await run("ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1");
      // The host (etcd's side) reaches the segment via the router; the route goes with the
      // underlay bridge at dispose.
      await run("ip", "route", "add", `${seg}.0/24`, "via", `${this.net24}.2`);
      for (const n of this.nodes) {
        await run("ip", "-n", n.ns, "route", "add", `${seg}.0/24`, "via", `${this.net24}.2`);
        if (seg6) {
          await run("ip", "-n", n.ns, "route", "add", `${seg6}:/64`, "via", `${this.net64}:2`);
        }
      }
    }
    return await this.addNode(this.#router);
  }

  /** The router's IPv6 side: addresses without DAD, forwarding, the host's route. */
  async #routerIpv6(r: string, seg6: string): Promise<void> {
    for (const dev of ["eth0", "br1"]) {
      await run("ip", "netns", "exec", r, "sysctl", "-qw", `net.ipv6.conf.${dev}.accept_dad=0`);
    }
    await run("ip", "-n", r, "addr", "add", `${this.net64}:2/64`, "dev", "eth0", "nodad");
    await run("ip", "-n", r, "addr", "add", `${seg6}:1/64`, "dev", "br1", "nodad");
    await run("ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1");
    await run("ip", "-6", "route", "add", `${seg6}:/64`, "via", `${this.net64}:2`);
  }

  /** A node's routes: default via the router when behind it, else to the segment beyond it. */
  async #routes(ns: string, behind?: Segment): Promise<void> {
    if (behind) {
      await run("ip", "-n", ns, "route", "add", "default", "via", `${behind.seg}.1`);
      if (behind.seg6) {
        await run("ip", "-n", ns, "-6", "route", "add", "default", "via", `${behind.seg6}:1`);
      }
      return;
    }
    const r = this.#router;
    if (!r) return;
    await run("ip", "-n", ns, "route", "add", `${r.seg}.0/24`, "via", `${this.net24}.2`);
    if (r.seg6) {
      await run("ip", "-n", ns, "route", "add", `${r.seg6}:/64`, "via", `${this.net64}:2`);
    }
  }

  /** Adds a node (netns, underlay address, confs); returns it. */
  async addNode(behind?: Segment): Promise<OverlayNode> {
    const index = this.nodes.length;
    const name = `node${index}`;
    const dir = `${this.dir}/${name}`;
    const ns = ppName(`${this.#tag}n${index}`);
    const node: OverlayNode = {
      index,
      name,
      ns,
      ip: this.#o.underlay6Only ? "" : `${behind?.seg ?? this.net24}.${10 + index}`,
      dir,
      clusterConf: `${dir}/nets/default/cluster.json`,
      podplexConf: `${dir}/podplex.conflist`,
      stateDir: `${dir}/data/cluster`,
      agentLog: `${dir}/agent.log`,
    };
    this.nodes.push(node); // before it exists: dispose removes a half-made node too
    await run("ip", "netns", "add", ns);
    await run("ip", "-n", ns, "link", "set", "lo", "up");
    const host = ppName(`${this.#tag}v`);
    await run("ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns);
    if (behind) {
      await run("ip", "link", "set", host, "netns", behind.ns);
      await run("ip", "-n", behind.ns, "link", "set", host, "master", behind.bridge, "up");
    } else await run("ip", "link", "set", host, "master", this.#underlay, "up");
    if (node.ip) await run("ip", "-n", ns, "addr", "add", `${node.ip}/24`, "dev", "eth0");
    const net64 = behind ? behind.seg6 : this.net64;
    if (net64) {
      node.ip6 = `${net64}:${10 + index}`;
      await run("ip", "-n", ns, "addr", "add", `${node.ip6}/64`, "dev", "eth0", "nodad");
      // eth0's link-local address too (made when it goes up): a node sends no neighbour
      // solicitation for forwarded packets (host-gw) while that is tentative, and a real
      // node's was settled long ago.
      await run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0");
    }
    await run("ip", "-n", ns, "link", "set", "eth0", "up");
    await this.#routes(ns, behind);
    await Deno.mkdir(`${dir}/nets/default`, { recursive: true });
    await Deno.writeTextFile(node.clusterConf, JSON.stringify(this.confOf(index, name, dir)));
    await Deno.writeTextFile(
      node.podplexConf,
      JSON.stringify({
        cniVersion: "1.1.0",
        name: "podplex",
        plugins: [{
          type: "podplex",
          clusterNetwork: "default/cluster",
          networksDir: `${dir}/nets`,
          stateDir: `${dir}/state`,
        }],
      }),
    );
    return node;
  }

  /** Writes `<node dir>/kubeconfig` of every node: the API server at `url`, a token. */
  async writeKubeconfigs(url: string): Promise<void> {
    for (const n of this.nodes) {
      await Deno.writeTextFile(
        `${n.dir}/kubeconfig`,
        `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${url}"}}]\n` +
          `users: [{name: u, user: {token: t}}]\n` +
          `contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`,
      );
    }
  }

  /** Starts node `i`'s daemon (`podplex serve --cluster-network`); resolves once it joined. */
  async startAgent(i: number, waitMs = 15000): Promise<void> {
    const n = this.nodes[i];
    // The shell execs ip, which execs podplex: the child's pid is the daemon's.
    const cmd = `exec ip netns exec "$1" "$2" serve --socket "$3" --cluster-network "$4" 2>>"$5"`;
    n.agent = new Deno.Command("sh", {
      args: ["-c", cmd, "sh", n.ns, PODPLEX, `${n.dir}/serve.sock`, n.clusterConf, n.agentLog],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const end = Date.now() + waitMs;
    while (Date.now() < end) {
      if (await Deno.stat(`${n.stateDir}/agent.sock`).then(() => true, () => false)) return;
      const st = await Promise.race([n.agent.status, new Promise((r) => setTimeout(r, 50))]);
      if (st) break;
    }
    throw new Error(`The agent of ${n.name} did not join: ${await this.log(i)}`);
  }

  /** Stops node `i`'s daemon with `signal` and waits for it. */
  async stopAgent(i: number, signal: Deno.Signal = "SIGTERM"): Promise<void> {
    const p = this.nodes[i].agent;
    if (!p) return;
    this.nodes[i].agent = undefined;
    try {
      p.kill(signal);
    } catch { /* gone */ }
    await p.status;
  }

  /** Node `i`'s daemon log. */
  async log(i: number): Promise<string> {
    return await Deno.readTextFile(this.nodes[i].agentLog).catch(() => "");
  }

  /** Runs `bin/podplex args...` in node `i`'s netns. */
  async podplex(i: number, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
    const out = await new Deno.Command("ip", {
      args: ["netns", "exec", this.nodes[i].ns, PODPLEX, ...args],
      env: { PODPLEX_SOCKET: "/nonexistent/podplex.sock" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, out: dec.decode(out.stdout), err: dec.decode(out.stderr) };
  }

  /** One CNI call of `pod` through node `i`'s podplex conf. */
  async cni(command: "ADD" | "DEL" | "CHECK", pod: { id: string; ns: string }, node: number) {
    const n = this.nodes[node];
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", n.ns, PODPLEX],
      env: {
        CNI_COMMAND: command,
        CNI_CONTAINERID: pod.id,
        CNI_NETNS: `/run/netns/${pod.ns}`,
        CNI_IFNAME: "eth0",
        CNI_PATH: "/usr/lib/cni",
        CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod.id}`,
        PODPLEX_SOCKET: "/nonexistent/podplex.sock",
      },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    // What libcni writes on stdin: the list's one plugin with the list's name and version.
    const list = JSON.parse(await Deno.readTextFile(n.podplexConf));
    const conf = { ...list.plugins[0], name: list.name, cniVersion: list.cniVersion };
    await w.write(new TextEncoder().encode(JSON.stringify(conf)));
    await w.close();
    const out = await child.output();
    const dec = new TextDecoder();
    const text = dec.decode(out.stdout);
    let json: Record<string, unknown> | undefined;
    try {
      json = JSON.parse(text);
    } catch { /* not JSON */ }
    return { code: out.code, json, text, stderr: dec.decode(out.stderr) };
  }

  /** A pod netns (removed at dispose), for a CNI call made by the test. */
  async addPodNetns(): Promise<string> {
    const ns = ppName(`${this.#tag}p`);
    await run("ip", "netns", "add", ns);
    this.pods.push({ id: "", ns, node: -1, ip: "" });
    return ns;
  }

  /** How many links netns `ns` has. */
  async linkCount(ns: string): Promise<number> {
    return JSON.parse(await run("ip", "-j", "-n", ns, "link", "show")).length;
  }

  /** Makes a pod on node `i` (netns + ADD); returns it with its eth0 address. */
  async addPod(i: number): Promise<OverlayPod> {
    const ns = ppName(`${this.#tag}p`);
    await run("ip", "netns", "add", ns);
    const pod: OverlayPod = {
      id: `pp${this.#tag}${ns.slice(4)}n${i}`,
      ns,
      node: i,
      ip: "",
      ips: [],
    };
    this.pods.push(pod);
    const r = await this.cni("ADD", pod, i);
    if (r.code !== 0) throw new Error(`ADD on ${this.nodes[i].name} failed: ${r.text}${r.stderr}`);
    const ips = (r.json?.ips ?? []) as Array<{ address: string }>;
    pod.ips = ips.map((a) => a.address.split("/")[0]);
    pod.ip = pod.ips[0] ?? "";
    return pod;
  }

  /** Every subnet lease in etcd. */
  async leases(): Promise<SubnetLease[]> {
    const r = await this.client.range(subnetsPrefix("/coreos.com/network"), { prefix: true });
    return r.kvs.map(parseLease).filter((l): l is SubnetLease => l !== undefined);
  }

  /** Node `i`'s state file. */
  state(i: number): Promise<NodeState | undefined> {
    return readNodeState(this.nodes[i].stateDir);
  }

  /**
   * What the kernel of node `i` has on its VTEP of `family` (empty when there is no VTEP);
   * the IPv6 one is `podplex-v6.1` unless `vtep` says.
   */
  overlay(i: number, vtep?: string, family: 4 | 6 = 4): OverlayState {
    using nl = Netlink.open(`/run/netns/${this.nodes[i].ns}`);
    const l = nl.getLink(vtep ?? (family === 4 ? "podplex.1" : "podplex-v6.1"));
    return l ? readOverlay(nl, l.index, family) : { routes: [], neighbours: [], fdb: [] };
  }

  /** What node `i`'s VTEP of `family` should hold for `leases`. */
  expected(i: number, leases: SubnetLease[], vni = 1, family: 4 | 6 = 4): OverlayState {
    return expectedState(desiredEntries(leases, vni, { node: this.nodes[i].name }, family));
  }

  /** Polls until `cond` holds or `ms` passed; the time it took (ms), or -1. */
  async until(cond: () => boolean | Promise<boolean>, ms = 5000, stepMs = 10): Promise<number> {
    const t0 = performance.now();
    while (performance.now() - t0 < ms) {
      if (await cond()) return performance.now() - t0;
      await new Promise((r) => setTimeout(r, stepMs));
    }
    return await cond() ? performance.now() - t0 : -1;
  }

  /** Pings `to` from `from` (count packets, bounded; -4 or -6 by `to`); whether every reply came. */
  async ping(from: OverlayPod, to: string, count = 2): Promise<boolean> {
    return await tryRun(
      "ip",
      "netns",
      "exec",
      from.ns,
      "ping",
      to.includes(":") ? "-6" : "-4",
      "-c",
      String(count),
      "-i",
      "0.2",
      "-W",
      "1",
      to,
    );
  }

  /**
   * The source address a UDP datagram from netns `fromNs` to `toIp` (IPv4 or IPv6) has when it
   * arrives in netns `toNs` (see tests/_net_probe.ts).
   */
  sourceSeen(fromNs: string, toNs: string, toIp: string): Promise<string> {
    return sourceSeen(fromNs, toNs, toIp);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const n of this.nodes.keys()) await this.stopAgent(n, "SIGKILL");
    this.client.close();
    for (const p of this.pods) await tryRun("ip", "netns", "delete", p.ns);
    for (const n of this.nodes) await tryRun("ip", "netns", "delete", n.ns);
    if (this.#router) await tryRun("ip", "netns", "delete", this.#router.ns);
    await tryRun("ip", "link", "del", this.#underlay);
    await this.etcd.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
