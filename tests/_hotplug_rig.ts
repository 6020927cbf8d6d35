/**
 * What the hot-plug tests share: bridge + host-local networks on `ppd` bridges in
 * 10.163.0.0/16, a netns per pod, and readers of the kernel's and the disk's state.
 *
 * @module
 */
import { ipJson, run, tryRun } from "./testutils.ts";

/** A short random name with this suite's `ppd` prefix (a valid ifname). */
export function ppdName(tag = ""): string {
  const hex = Array.from(
    crypto.getRandomValues(new Uint8Array(4)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  return `ppd${tag.slice(0, 4)}${hex}`;
}

/** Networks `net-a`.. in namespace `default`, each a bridge on 10.163.<base+i>.0/24. */
export interface HotplugNetworks extends AsyncDisposable {
  dir: string;
  networksDir: string;
  stateDir: string;
  dataDir: string;
  bridges: string[];
  /** The subnet prefix of network i (`10.163.N`). */
  prefix(i: number): string;
}

/**
 * Writes `count` networks; `base` picks the third octets (tests running at once use
 * different bases).
 */
export async function hotplugNetworks(count: number, base: number): Promise<HotplugNetworks> {
  const dir = await Deno.makeTempDir({ prefix: "ppdnets" });
  const networksDir = `${dir}/networks.d`;
  const dataDir = `${dir}/leases`;
  await Deno.mkdir(`${networksDir}/default`, { recursive: true });
  const bridges: string[] = [];
  const prefix = (i: number) => `10.163.${base + i}`;
  for (let i = 0; i < count; i++) {
    const name = `net-${String.fromCharCode(97 + i)}`;
    const br = ppdName("b");
    bridges.push(br);
    await Deno.writeTextFile(
      `${networksDir}/default/${name}.json`,
      JSON.stringify({
        cniVersion: "1.0.0",
        name,
        type: "bridge",
        bridge: br,
        ipam: { type: "host-local", subnet: `${prefix(i)}.0/24`, dataDir },
      }),
    );
  }
  return {
    dir,
    networksDir,
    stateDir: `${dir}/state`,
    dataDir,
    bridges,
    prefix,
    async [Symbol.asyncDispose]() {
      for (const br of bridges) await tryRun("ip", "link", "del", br);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** A throwaway netns named `ppd...`, loopback up, deleted on dispose. */
export async function ppdNetns(): Promise<{ name: string; path: string } & AsyncDisposable> {
  const name = ppdName("n");
  await run("ip", "netns", "add", name);
  await run("ip", "-n", name, "link", "set", "lo", "up");
  return {
    name,
    path: `/run/netns/${name}`,
    async [Symbol.asyncDispose]() {
      await tryRun("ip", "netns", "delete", name);
    },
  };
}

/** The interfaces of a netns other than lo, sorted. */
export async function podLinks(ns: string): Promise<string[]> {
  const links = await ipJson(ns, "link", "show");
  return links.map((l) => String(l.ifname)).filter((n) => n !== "lo").sort();
}

/** The IPv4 addresses (with prefix) of one interface in a netns. */
export async function addrsOf(ns: string, dev: string): Promise<string[]> {
  const [link] = await ipJson(ns, "addr", "show", "dev", dev);
  const infos = (link?.addr_info ?? []) as Array<
    { family: string; local: string; prefixlen: number }
  >;
  return infos.filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`);
}

/** The host-local leases under `dataDir`, as `<network>/<ip>`. */
export function leases(dataDir: string): string[] {
  const out: string[] = [];
  try {
    for (const net of Deno.readDirSync(dataDir)) {
      for (const f of Deno.readDirSync(`${dataDir}/${net.name}`)) {
        if (/^[0-9a-f.:]+$/.test(f.name)) out.push(`${net.name}/${f.name}`);
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

/** The pod state files (and temp files) in a state dir. */
export function stateNames(stateDir: string): string[] {
  try {
    return Array.from(Deno.readDirSync(stateDir), (e) => e.name).filter((n) => n !== "standalone")
      .sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

/** The veths left on the host whose peer was in a pod (podplex's `veth...` names) on `bridges`. */
export async function bridgePorts(bridges: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const br of bridges) {
    const ports = await ipJson(undefined, "link", "show", "master", br).catch(() => []);
    out.push(...ports.map((p) => `${br}:${p.ifname}`));
  }
  return out.sort();
}
