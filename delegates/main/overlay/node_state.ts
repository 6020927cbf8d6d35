/**
 * The node's state of one cluster network, in `<dataDir>/<name>/` (0700):
 *
 * - `node.json`: the subnet the node holds, its etcd lease, its VTEP and MTU; written by the
 *   agent and by a per-call ADD after each (re)join, read by ADDs (the subnet to allocate
 *   from) and by the next start (the subnet to ask for again, the lease to keep);
 * - `agent.sock`: a unix socket the node agent listens on while it runs
 *   (controllers/overlay/alive.ts). A CNI call that can
 *   connect to it knows a daemon keeps the overlay in sync; one that cannot does the sync
 *   itself before it returns.
 *
 * @module
 */
import { writeFileAtomic } from "./subnet_env.ts";

/** `node.json`. */
export interface NodeState {
  node: string;
  /** The IPv4 cluster network (`10.244.0.0/16`; "" when the network is IPv6 only). */
  network: string;
  /** The node's IPv4 subnet (`10.244.3.0/24`; "" when the network is IPv6 only). */
  subnet: string;
  publicIp: string;
  /** The IPv6 cluster network (`fd00:10:244::/56`), in dual stack and IPv6 only. */
  network6?: string;
  /** The node's IPv6 subnet (`fd00:10:244:3::/64`). */
  subnet6?: string;
  publicIpv6?: string;
  /** The IPv6 VTEP (vxlan with an IPv6 subnet). */
  vtep6Name?: string;
  vtep6Mac?: string;
  /** The backend (`vxlan`, `host-gw`; absent in a state written before host-gw). */
  backend?: string;
  /** The VTEP ("" for host-gw). */
  vtepName: string;
  vtepMac: string;
  vni: number;
  port: number;
  /** The overlay MTU (pods and bridge). */
  mtu: number;
  ipMasq: boolean;
  /** The etcd lease the subnet key is attached to. */
  leaseId: string;
  /** When it was written (ms since the epoch). */
  updatedAt: number;
}

/** The state file's path. */
export function stateFile(stateDir: string): string {
  return `${stateDir}/node.json`;
}

/** The agent's socket path. */
export function agentSocket(stateDir: string): string {
  return `${stateDir}/agent.sock`;
}

/** Reads `node.json`; undefined when absent or unreadable (a first start). */
export async function readNodeState(stateDir: string): Promise<NodeState | undefined> {
  try {
    const j = JSON.parse(await Deno.readTextFile(stateFile(stateDir)));
    return typeof j?.subnet === "string" && typeof j?.node === "string" ? j : undefined;
  } catch {
    return undefined;
  }
}

/** Writes `node.json` whole (the dir made 0700). */
export async function writeNodeState(stateDir: string, s: NodeState): Promise<void> {
  await ensureStateDir(stateDir);
  await writeFileAtomic(stateFile(stateDir), JSON.stringify(s, null, 2) + "\n", 0o600);
}

/** Creates the state dir 0700 when missing. */
export async function ensureStateDir(stateDir: string): Promise<void> {
  await Deno.mkdir(stateDir, { recursive: true, mode: 0o700 });
}

/** Whether a node agent answers on the state dir's socket. */
export async function agentAlive(stateDir: string): Promise<boolean> {
  try {
    (await Deno.connect({ transport: "unix", path: agentSocket(stateDir) })).close();
    return true;
  } catch {
    return false;
  }
}
