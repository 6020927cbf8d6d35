/**
 * The chain runner drives Debian's reference plugins (bridge + host-local, then tuning)
 * through ADD, CHECK, DEL and a second DEL, and its ADD result equals what the same plugins
 * give when run by hand.
 *
 * Everything happens in throwaway namespaces: each run has a "host" netns (where the bridge
 * and the host ends of the veths live) and a "container" netns. The plugins are reached
 * through wrapper scripts in a temp CNI_PATH that `ip netns exec` into the run's host netns,
 * so the real host never sees a link.
 */
import { LEASE_INDEX } from "../delegates/ipam/host_local/lease_index.ts";
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { parseConfList } from "../conf/netconf.ts";
import { convertResult } from "../conf/result.ts";
import type { CniResult } from "../conf/types.ts";
import { runChain } from "../delegates/runner/chain.ts";
import { createRegistry } from "../delegates/runner/registry.ts";
import type { PluginEnv } from "../delegates/types.ts";
import { ipJson, isRoot, linkExists, tempDir, tempNetns, type TestNetns } from "./testutils.ts";

const REF = "/usr/lib/cni";
const haveRef = await Deno.stat(`${REF}/bridge`).then(() => true, () => false);
const CONTAINER_ID = "ppchaintest0123456789";
const MAC = "c2:00:00:aa:bb:01";

/** A temp dir of wrappers: `<dir>/<plugin>` runs the reference plugin inside `hostNs`. */
async function wrappers(dir: string, hostNs: string): Promise<void> {
  for (const p of ["bridge", "host-local", "tuning"]) {
    await Deno.writeTextFile(
      `${dir}/${p}`,
      `#!/bin/sh\nexec ip netns exec ${hostNs} ${REF}/${p} "$@"\n`,
      { mode: 0o755 },
    );
  }
}

function confList(dataDir: string): string {
  return JSON.stringify({
    cniVersion: "1.0.0",
    name: "ppchain",
    plugins: [
      {
        type: "bridge",
        bridge: "ppbr0",
        isGateway: false,
        ipam: {
          type: "host-local",
          dataDir,
          ranges: [[{ subnet: "10.88.7.0/24" }]],
          // With an explicit gw: the 1.1.1 bridge CHECK cannot match a gw-less route (it
          // installs it via the range's gateway, then looks for no gateway).
          routes: [{ dst: "10.99.0.0/16", gw: "10.88.7.1" }],
        },
      },
      { type: "tuning", promisc: true, capabilities: { mac: true } },
    ],
  });
}

/**
 * Replaces what is random per run (bridge MAC, host veth name and MAC, netns path) and drops
 * an empty `dns` (the 1.1.1 reference plugins print `"dns": {}`, podplex omits it).
 */
function normalise(r: Record<string, unknown>): Record<string, unknown> {
  const copy = structuredClone(r) as { interfaces: Array<Record<string, unknown>>; dns?: object };
  if (copy.dns && Object.keys(copy.dns).length === 0) delete copy.dns;
  copy.interfaces[0].mac = "BRIDGE-MAC";
  copy.interfaces[1].name = "HOST-VETH";
  copy.interfaces[1].mac = "HOST-VETH-MAC";
  copy.interfaces[2].sandbox = "SANDBOX";
  return copy;
}

/** One run's world: host + container netns, a CNI_PATH of wrappers and a dataDir. */
interface World extends AsyncDisposable {
  host: TestNetns;
  container: TestNetns;
  binDir: string;
  dataDir: string;
}

async function world(): Promise<World> {
  const host = await tempNetns("h");
  const container = await tempNetns("c");
  const bin = await tempDir("ppbin");
  const data = await tempDir("ppdata");
  await wrappers(bin.path, host.name);
  return {
    host,
    container,
    binDir: bin.path,
    dataDir: data.path,
    async [Symbol.asyncDispose]() {
      await container[Symbol.asyncDispose]();
      await host[Symbol.asyncDispose]();
      await bin[Symbol.asyncDispose]();
      await data[Symbol.asyncDispose]();
    },
  };
}

function envOf(w: World): PluginEnv {
  return { containerId: CONTAINER_ID, netns: w.container.path, ifname: "eth0", path: [w.binDir] };
}

/** Runs one reference plugin by hand, as a runtime would, and returns its stdout JSON. */
async function byHand(w: World, type: string, conf: unknown): Promise<Record<string, unknown>> {
  const child = new Deno.Command(`${w.binDir}/${type}`, {
    env: {
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: CONTAINER_ID,
      CNI_NETNS: w.container.path,
      CNI_IFNAME: "eth0",
      CNI_PATH: w.binDir,
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(conf)));
  await writer.close();
  const out = await child.output();
  const text = new TextDecoder().decode(out.stdout);
  ok(out.success, `${type} ADD by hand failed: ${text} ${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(text);
}

async function reservations(dataDir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const net of Deno.readDir(dataDir)) {
    for await (const f of Deno.readDir(`${dataDir}/${net.name}`)) {
      const bookkeeping = f.name === "lock" || f.name.startsWith("last_reserved_ip") ||
        f.name === LEASE_INDEX;
      if (!bookkeeping) names.push(f.name);
    }
  }
  return names;
}

async function linkNames(ns: string): Promise<string[]> {
  return (await ipJson(ns, "link", "show")).map((l) => String(l.ifname)).sort();
}

Deno.test({
  name: "the chain runner drives bridge + host-local + tuning like running them by hand",
  ignore: !isRoot || !haveRef,
  async fn() {
    await using a = await world();
    await using b = await world();
    const list = parseConfList(confList(a.dataDir));
    const registry = createRegistry({ builtins: {} });
    // containerd spells capability keys as it likes: "Mac" must reach tuning as "mac".
    const capabilityArgs = { Mac: MAC, portMappings: [{ HostPort: 80 }] };
    const opts = { env: envOf(a), registry, capabilityArgs };

    const { result } = await runChain(list, "ADD", opts);
    ok(result);
    const json = convertResult(result, list.cniVersion);
    assertEquals(json.cniVersion, "1.0.0");
    assertEquals((json.interfaces as Array<Record<string, unknown>>)[2].mac, MAC);
    assertEquals(await reservations(a.dataDir), ["10.88.7.2"]);
    const eth0 = await ipJson(a.container.name, "addr", "show", "dev", "eth0");
    assertEquals(eth0[0].address, MAC);
    ok((eth0[0].flags as string[]).includes("PROMISC"));

    // The same plugins by hand in world b, with the confs a runtime would build.
    const bridgeConf = { ...list.plugins[0].conf, name: "ppchain", cniVersion: "1.0.0" };
    (bridgeConf.ipam as Record<string, unknown>).dataDir = b.dataDir;
    const r1 = await byHand(b, "bridge", bridgeConf);
    const r2 = await byHand(b, "tuning", {
      ...list.plugins[1].conf,
      name: "ppchain",
      cniVersion: "1.0.0",
      prevResult: r1,
      runtimeConfig: { mac: MAC },
    });
    assertEquals(normalise(json), normalise(r2));

    await runChain(list, "CHECK", { ...opts, cachedResult: result as CniResult });
    await runChain(list, "DEL", { ...opts, cachedResult: result });
    await runChain(list, "DEL", { ...opts, cachedResult: result });
    assertEquals(await reservations(a.dataDir), []);
    assertEquals(await linkExists(a.container.name, "eth0"), false);
    assertEquals(await linkNames(a.host.name), ["lo", "ppbr0"]);
  },
});

Deno.test({
  name: "a chain ADD stops at the first failing plugin and keeps its error code",
  ignore: !isRoot || !haveRef,
  async fn() {
    await using a = await world();
    const text = confList(a.dataDir).replace(`"mac":true`, `"mac":true},"mac":"not-a-mac","x":{`);
    const list = parseConfList(text);
    const registry = createRegistry({ builtins: {} });
    const opts = { env: envOf(a), registry };
    let code = 0;
    try {
      await runChain(list, "ADD", opts);
    } catch (e) {
      code = (e as { code: number }).code;
      ok(String((e as Error).message).includes(`"tuning"`));
    }
    ok(code !== 0, "ADD must fail");
    // The caller rolls back: DEL without a cached result cleans bridge and host-local.
    await runChain(list, "DEL", opts);
    assertEquals(await reservations(a.dataDir), []);
    assertEquals(await linkExists(a.container.name, "eth0"), false);
  },
});
