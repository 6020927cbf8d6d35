/**
 * A simulated cluster for the cluster IPAM's end-to-end tests: a real etcd (1 or 3 members),
 * N nodes (a netns each, joined to the host by an underlay bridge so that they reach etcd,
 * each with its own podplex state dir, networks dir and IPAM dir), and pods (a netns each)
 * ADDed and DELed by `bin/podplex` run inside their node's netns, as kubelet would run it.
 *
 * Networks `net0..net<k-1>`: a bridge each (inside the node) with the cluster IPAM
 * (`whereabouts`) or `host-local`; net0 is the cluster network, the others come from the
 * pod's `k8s.v1.cni.cncf.io/networks` annotation.
 *
 * Names start with `ppe`; the underlay is 10.204.<r>.0/24, pod ranges 10.203.0.0/23 (net0)
 * and 10.205.<k>.0/24.
 *
 * @module
 */
import { EtcdClient } from "../clients/etcd/client.ts";
import type { AddressRecord } from "../delegates/ipam/cluster/keys.ts";
import { parseRecord } from "../delegates/ipam/cluster/store.ts";
import { type EtcdCluster, startEtcd } from "./etcd_server.ts";
import { ppName, run, tryRun } from "./testutils.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const PREFIX = "/podplex/ipam/v1";

/** Options of {@linkcode ClusterRig.start}. */
export interface RigOptions {
  members?: number;
  nodes?: number;
  /** Networks per pod (default 1). */
  networks?: number;
  ipam?: "whereabouts" | "host-local";
  /** ipam.block_size (default: the IPAM's default). */
  blockSize?: number;
  /** ipam.etcd_timeout_ms (default 5000). */
  etcdTimeoutMs?: number;
}

/** One simulated node. */
export interface RigNode {
  name: string;
  ns: string;
  dir: string;
  confPath: string;
}

/** One pod. */
export interface RigPod {
  id: string;
  ns: string;
  node: number;
}

/** The outcome of one CNI call. */
export interface CniOutcome {
  code: number;
  /** The parsed stdout (result or error), undefined when not JSON. */
  json: Record<string, unknown> | undefined;
  stderr: string;
  ms: number;
}

/** The simulated cluster; dispose it with `await using`. */
export class ClusterRig implements AsyncDisposable {
  readonly etcd: EtcdCluster;
  readonly nodes: RigNode[] = [];
  readonly pods: RigPod[] = [];
  readonly dir: string;
  readonly #underlay: string;
  readonly #client: EtcdClient;
  readonly #o: RigOptions;

  private constructor(etcd: EtcdCluster, dir: string, underlay: string, o: RigOptions) {
    this.etcd = etcd;
    this.dir = dir;
    this.#underlay = underlay;
    this.#o = o;
    this.#client = new EtcdClient({ endpoints: etcd.endpoints, totalTimeoutMs: 15000 });
  }

  /** Starts etcd, the underlay and the nodes. */
  static async start(o: RigOptions = {}): Promise<ClusterRig> {
    const dir = await Deno.makeTempDir({ prefix: "ppe-rig-" });
    const octet = 1 + Math.floor(Math.random() * 250);
    const hostIp = `10.204.${octet}.1`;
    const underlay = ppName("eu");
    await run("ip", "link", "add", underlay, "type", "bridge");
    let etcd: EtcdCluster | undefined;
    try {
      await run("ip", "addr", "add", `${hostIp}/24`, "dev", underlay);
      await run("ip", "link", "set", underlay, "up");
      etcd = await startEtcd({ members: o.members ?? 1, clientHosts: [hostIp] });
      const rig = new ClusterRig(etcd, dir, underlay, o);
      for (let i = 0; i < (o.nodes ?? 3); i++) {
        await rig.#addNode(i, `10.204.${octet}.${10 + i}/24`, etcd.endpointsOn(hostIp));
      }
      return rig;
    } catch (err) {
      await etcd?.stop();
      await tryRun("ip", "link", "del", underlay);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw err;
    }
  }

  async #addNode(i: number, addr: string, endpoints: string[]): Promise<void> {
    const ns = ppName(`en${i}`);
    const name = `node${i}`;
    const dir = `${this.dir}/${name}`;
    // Registered before it exists, so that dispose removes a half-made node too.
    const node: RigNode = { name, ns, dir, confPath: `${dir}/podplex.conflist` };
    this.nodes.push(node);
    await run("ip", "netns", "add", ns);
    await run("ip", "-n", ns, "link", "set", "lo", "up");
    const host = ppName("ev");
    await run("ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns);
    await run("ip", "link", "set", host, "master", this.#underlay, "up");
    await run("ip", "-n", ns, "addr", "add", addr, "dev", "eth0");
    await run("ip", "-n", ns, "link", "set", "eth0", "up");
    await Deno.mkdir(`${dir}/nets/default`, { recursive: true });
    const nets = this.#o.networks ?? 1;
    for (let k = 0; k < nets; k++) {
      await Deno.writeTextFile(
        `${dir}/nets/default/net${k}.json`,
        JSON.stringify(this.#netConf(k, node, endpoints)),
      );
    }
    await Deno.writeTextFile(
      node.confPath,
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "podplex",
        type: "podplex",
        clusterNetwork: "default/net0",
        networksDir: `${dir}/nets`,
        stateDir: `${dir}/state`,
      }),
    );
  }

  #netConf(k: number, node: RigNode, endpoints: string[]) {
    const range = k === 0 ? "10.203.0.0/23" : `10.205.${k}.0/24`;
    const ipam = this.#o.ipam === "host-local"
      ? { type: "host-local", subnet: range, dataDir: `${node.dir}/leases` }
      : {
        type: "whereabouts",
        range,
        etcd_host: endpoints.join(","),
        node_name: node.name,
        dataDir: `${node.dir}/ipam`,
        etcd_timeout_ms: this.#o.etcdTimeoutMs ?? 5000,
        ...(this.#o.blockSize !== undefined ? { block_size: this.#o.blockSize } : {}),
      };
    return { cniVersion: "1.0.0", name: `net${k}`, type: "bridge", bridge: `ppebr${k}`, ipam };
  }

  /** Makes `n` pods, spread round-robin over the nodes. */
  async makePods(n: number): Promise<RigPod[]> {
    const made: RigPod[] = [];
    await pool(Array.from({ length: n }, (_, i) => i), 8, async (i) => {
      const ns = ppName("ep");
      await run("ip", "netns", "add", ns);
      const pod = { id: `ppe${ns.slice(3)}c${i}`, ns, node: i % this.nodes.length };
      this.pods.push(pod);
      made.push(pod);
    });
    return made.sort((a, b) => a.id.localeCompare(b.id));
  }

  /** The conf a pod's CNI call reads (its other networks in the annotation). */
  confText(node: RigNode): string {
    const base = JSON.parse(Deno.readTextFileSync(node.confPath));
    const nets = this.#o.networks ?? 1;
    if (nets > 1) {
      const list = Array.from({ length: nets - 1 }, (_, k) => `default/net${k + 1}`).join(",");
      base.runtimeConfig = {
        "io.kubernetes.cri.pod-annotations": { "k8s.v1.cni.cncf.io/networks": list },
      };
    }
    return JSON.stringify(base);
  }

  /** Starts `bin/podplex` for `pod` in its node's netns (the caller owns the child). */
  spawn(command: "ADD" | "DEL" | "GC", pod: RigPod, stdin?: string): Deno.ChildProcess {
    const node = this.nodes[pod.node];
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", node.ns, `${ROOT}/bin/podplex`],
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
    w.write(new TextEncoder().encode(stdin ?? this.confText(node))).then(() => w.close()).catch(
      () => {},
    );
    return child;
  }

  /** Runs one CNI call to its end. */
  async cni(command: "ADD" | "DEL" | "GC", pod: RigPod, stdin?: string): Promise<CniOutcome> {
    const t0 = performance.now();
    const out = await this.spawn(command, pod, stdin).output();
    const text = new TextDecoder().decode(out.stdout);
    let json: Record<string, unknown> | undefined;
    try {
      json = JSON.parse(text);
    } catch { /* not JSON */ }
    return {
      code: out.code,
      json,
      stderr: new TextDecoder().decode(out.stderr),
      ms: performance.now() - t0,
    };
  }

  /** Every address record in etcd. */
  async records(): Promise<AddressRecord[]> {
    const r = await this.#client.range(`${PREFIX}/s/`, { prefix: true });
    return r.kvs.filter((kv) => kv.key.includes("/ip/")).map((kv) => parseRecord(kv.value)!)
      .filter(Boolean);
  }

  /** Keys of address records and owner index entries (0 when nothing is held). */
  async heldKeys(): Promise<string[]> {
    const r = await this.#client.range(`${PREFIX}/s/`, { prefix: true, keysOnly: true });
    return r.kvs.map((kv) => kv.key).filter((k) => k.includes("/ip/") || k.includes("/own/"));
  }

  /** The IPv4 addresses on a pod's interfaces (the kernel's view). */
  async podAddrs(pod: RigPod): Promise<string[]> {
    const j = JSON.parse(await run("ip", "-j", "-n", pod.ns, "-4", "addr", "show"));
    return j.flatMap((l: { ifname: string; addr_info: { local: string }[] }) =>
      l.ifname === "lo" ? [] : l.addr_info.map((a) => a.local)
    );
  }

  /** Runs `podplex ipam <args>` with a node's network conf; the parsed `--json` output. */
  async ipam(node: RigNode, ...args: string[]): Promise<unknown> {
    const out = await new Deno.Command(`${ROOT}/bin/podplex`, {
      args: ["ipam", ...args, "--network", `${node.dir}/nets/default/net0.json`, "--json"],
      env: { PODPLEX_SOCKET: "/nonexistent/podplex.sock" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`ipam ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
    return JSON.parse(new TextDecoder().decode(out.stdout));
  }

  /** Runs `podplex ipam reconcile` for a node (state-dir mode, no minimum age). */
  async reconcile(node: RigNode): Promise<Record<string, unknown>> {
    const conf = `${node.dir}/nets/default/net0.json`;
    const out = await new Deno.Command(`${ROOT}/bin/podplex`, {
      args: [
        "ipam",
        "reconcile",
        "--network",
        conf,
        "--state-dir",
        `${node.dir}/state`,
        "--min-age-ms",
        "0",
        "--json",
      ],
      env: { PODPLEX_SOCKET: "/nonexistent/podplex.sock" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    if (!out.success) throw new Error(`reconcile failed: ${new TextDecoder().decode(out.stderr)}`);
    return JSON.parse(text);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#client.close();
    await pool(this.pods, 8, (p) => tryRun("ip", "netns", "delete", p.ns).then(() => {}));
    for (const n of this.nodes) await tryRun("ip", "netns", "delete", n.ns);
    await tryRun("ip", "link", "del", this.#underlay);
    await this.etcd.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/** Runs `fn` over `items` with at most `limit` at a time. */
export async function pool<T, R>(
  items: T[],
  limit: number,
  fn: (t: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Code of a CNI error outcome (0 for success). */
export function errCode(o: CniOutcome): number {
  return o.code === 0 ? 0 : Number(o.json?.code ?? -1);
}
