/**
 * The networks a podman test attaches through podplex, and readers of the state they leave
 * on the host (leases, podplex state, libcni cache, veths on the test's bridges).
 *
 * @module
 */
import { ipJson } from "../testutils.ts";
import { LIBCNI_RESULTS, newBridge, type PodmanEnv } from "./harness.ts";

/** The CNI network name podman knows (the podplex conflist's name). */
export const NETWORK = "ppnet";

/** One bridge network in podplex's networksDir. */
export interface TestNetwork {
  /** `default/<name>`. */
  ref: string;
  name: string;
  bridge: string;
  /** e.g. `10.79.12.0/24`. */
  subnet: string;
  /** The first address host-local hands out (network + 2: +1 is the gateway). */
  firstIp: string;
}

/**
 * Writes `count` bridge networks `net-a`, `net-b`... (namespace `default`, host-local in the
 * env's dataDir, each on its own pp bridge and /24) and returns them in order.
 */
export async function writeNetworks(env: PodmanEnv, count = 3): Promise<TestNetwork[]> {
  // A random /24 block per run, so that parallel runs never share a subnet.
  const base = 3 * Math.floor(Math.random() * 80);
  await Deno.mkdir(`${env.networksDir}/default`, { recursive: true });
  const nets: TestNetwork[] = [];
  for (let i = 0; i < count; i++) {
    const name = `net-${String.fromCharCode(97 + i)}`;
    const prefix = `10.79.${base + i}`;
    const net: TestNetwork = {
      ref: `default/${name}`,
      name,
      bridge: newBridge(env),
      subnet: `${prefix}.0/24`,
      firstIp: `${prefix}.2`,
    };
    await writeNetwork(env, net);
    nets.push(net);
  }
  return nets;
}

/** Writes one network's conf (optionally with extra host-local ipam keys). */
export async function writeNetwork(
  env: PodmanEnv,
  net: TestNetwork,
  ipamExtra: Record<string, unknown> = {},
): Promise<void> {
  await Deno.writeTextFile(
    `${env.networksDir}/default/${net.name}.json`,
    JSON.stringify({
      cniVersion: "1.0.0",
      name: net.name,
      type: "bridge",
      bridge: net.bridge,
      ipam: { type: "host-local", subnet: net.subnet, dataDir: env.dataDir, ...ipamExtra },
    }),
  );
}

/** Writes the podplex conflist podman reads (network `ppnet`), with `extra` podplex keys. */
export async function writePodplexConflist(
  env: PodmanEnv,
  nets: TestNetwork[],
  extra: Record<string, unknown> = {},
): Promise<void> {
  const [cluster, ...rest] = nets;
  const conflist = {
    cniVersion: "1.0.0",
    name: NETWORK,
    plugins: [{
      type: "podplex",
      clusterNetwork: cluster.ref,
      defaultNetworks: rest.map((n) => n.ref),
      networksDir: env.networksDir,
      stateDir: env.stateDir,
      logLevel: "debug",
      logFile: env.logFile,
      ...extra,
    }],
  };
  await Deno.writeTextFile(`${env.netConfDir}/${NETWORK}.conflist`, JSON.stringify(conflist));
}

/** Lease files (`<network>/<ip>`) under the env's host-local dataDir. */
export async function leaseFiles(env: PodmanEnv): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const net of Deno.readDir(env.dataDir)) {
      for await (const f of Deno.readDir(`${env.dataDir}/${net.name}`)) {
        if (/^[0-9a-f.:]+$/.test(f.name)) out.push(`${net.name}/${f.name}`);
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

/** The files in podplex's stateDir. */
export async function stateFiles(env: PodmanEnv): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(env.stateDir)) out.push(e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

/** libcni's cached results for one container (podman's, under /var/lib/cni/results). */
export async function libcniCache(containerId: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(LIBCNI_RESULTS)) {
      if (e.name.includes(containerId)) out.push(e.name);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out;
}

/** Links enslaved to the test's bridges (the host ends of the pods' veths). */
export async function bridgePorts(nets: TestNetwork[]): Promise<string[]> {
  const bridges = new Set(nets.map((n) => n.bridge));
  const links = await ipJson(undefined, "link", "show");
  return links
    .filter((l) => bridges.has(l.master as string))
    .map((l) => `${l.master}:${l.ifname}`)
    .sort();
}

/**
 * IPv4 addresses per interface from busybox `ip -o addr` output
 * (`2: eth0    inet 10.79.0.2/24 brd ... scope global eth0`).
 */
export function parseIpOAddr(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const m = line.match(/^\d+:\s+(\S+)\s+inet\s+(\S+)/);
    if (!m) continue;
    const [, dev, addr] = m;
    out.set(dev, [...(out.get(dev) ?? []), addr]);
  }
  return out;
}
