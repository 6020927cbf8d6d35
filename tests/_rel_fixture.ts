/**
 * A rig for driving podplex through its real dispatcher (`runCni` with injected io, the
 * resolver `bin/podplex` uses) with bad input, and for counting what a call left behind:
 * links in the pod's netns, ports on the rig's bridges, host-local leases and temp files,
 * state files. Bridges and netns are named `ppr...`, subnets are in 10.202.0.0/16.
 *
 * @module
 */
import { type CniIo, runCni } from "../cli/cni.ts";
import { createRoot, type Root } from "../cli/root.ts";
import { ipJson, tempNetns, type TestNetns, tryRun } from "./testutils.ts";
import { LEASE_INDEX } from "../delegates/ipam/host_local/lease_index.ts";

const enc = new TextEncoder();

/** What one CNI call printed and returned. */
export interface CallOut {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed (the result or the error JSON); {} when empty. */
  json: Record<string, unknown>;
}

/** A random `ppr<tag><hex>` name of at most 15 bytes. */
export function pprName(tag: string): string {
  const hex = Array.from(crypto.getRandomValues(new Uint8Array(3)), (b) => b.toString(16))
    .map((h) => h.padStart(2, "0")).join("");
  return `ppr${tag.slice(0, 6)}${hex}`;
}

/**
 * Runs one CNI call through `runCni` and podplex's own composition root (a fresh one per
 * call, as a per-call process has), with `env` as the whole environment and `stdin` as the
 * conf.
 */
export async function callCni(
  env: Record<string, string | undefined>,
  stdin: string | Uint8Array,
  root: Root = createRoot(),
): Promise<CallOut> {
  let stdout = "", stderr = "";
  const io: CniIo = {
    env,
    stdin: () => Promise.resolve(typeof stdin === "string" ? enc.encode(stdin) : stdin),
    stdout: (s) => (stdout += s),
    stderr: (s) => (stderr += s),
  };
  let code: number;
  try {
    code = await runCni(io, root.resolver(undefined));
  } finally {
    root.close();
  }
  let json: Record<string, unknown> = {};
  try {
    json = stdout.trim() ? JSON.parse(stdout) : {};
  } catch {
    json = { unparsable: stdout };
  }
  return { code, stdout, stderr, json };
}

/** A temp dir with networks, state and leases, a pod netns, and the bridges they use. */
export interface Rig extends AsyncDisposable {
  dir: string;
  networksDir: string;
  stateDir: string;
  dataDir: string;
  netns: TestNetns;
  bridges: string[];
  /** Writes `networksDir/<ns>/<file>`; returns its path. */
  writeDefinition(file: string, text: string, ns?: string): string;
  /** A bridge + host-local network definition on subnet `10.202.<octet>.0/24`. */
  bridgeNetwork(name: string, octet: number, extra?: Record<string, unknown>): string;
  /** The podplex conf text with the rig's dirs, plus `extra`. */
  podplexConf(extra?: Record<string, unknown>): string;
  /** The CNI env of an ADD/DEL for `containerId` in the rig's netns. */
  env(command: string, containerId: string, extra?: Record<string, string>): Record<string, string>;
  /** Everything left behind, one line each (empty when clean). */
  leftovers(): Promise<string[]>;
}

function listNames(dir: string): string[] {
  try {
    return Array.from(Deno.readDirSync(dir), (e) => e.name);
  } catch {
    return [];
  }
}

/** Creates a rig with its own netns and dirs. Use with `await using`. */
export async function createRig(tag: string): Promise<Rig> {
  const dir = Deno.makeTempDirSync({ prefix: "ppr-rig-" });
  const networksDir = `${dir}/networks.d`, stateDir = `${dir}/state`, dataDir = `${dir}/leases`;
  Deno.mkdirSync(`${networksDir}/default`, { recursive: true });
  const netns = await tempNetns(`r${tag}`);
  const bridges: string[] = [];
  const rig: Rig = {
    dir,
    networksDir,
    stateDir,
    dataDir,
    netns,
    bridges,
    writeDefinition(file, text, ns = "default") {
      Deno.mkdirSync(`${networksDir}/${ns}`, { recursive: true });
      const path = `${networksDir}/${ns}/${file}`;
      Deno.writeTextFileSync(path, text);
      return path;
    },
    bridgeNetwork(name, octet, extra = {}) {
      const bridge = pprName("b");
      bridges.push(bridge);
      return rig.writeDefinition(
        `${name}.json`,
        JSON.stringify({
          cniVersion: "1.0.0",
          name,
          type: "bridge",
          bridge,
          capabilities: { mac: true, ips: true },
          ipam: { type: "host-local", subnet: `10.202.${octet}.0/24`, dataDir },
          ...extra,
        }),
      );
    },
    podplexConf(extra = {}) {
      return JSON.stringify({
        cniVersion: "1.1.0",
        name: "podplex",
        type: "podplex",
        networksDir,
        stateDir,
        confDir: `${dir}/net.d`,
        capabilities: { "io.kubernetes.cri.pod-annotations": true },
        ...extra,
      });
    },
    env(command, containerId, extra = {}) {
      return {
        CNI_COMMAND: command,
        CNI_CONTAINERID: containerId,
        CNI_NETNS: netns.path,
        CNI_IFNAME: "eth0",
        CNI_PATH: "/usr/lib/cni",
        CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=ppr-pod",
        ...extra,
      };
    },
    async leftovers() {
      const out: string[] = [];
      for (const l of await ipJson(netns.name, "link", "show")) {
        if (l.ifname !== "lo") out.push(`link ${l.ifname} in the pod netns`);
      }
      for (const br of bridges) {
        if (!(await tryRun("ip", "link", "show", "dev", br))) continue;
        for (const p of await ipJson(undefined, "link", "show", "master", br)) {
          out.push(`port ${p.ifname} on ${br}`);
        }
      }
      for (const net of listNames(dataDir)) {
        for (const f of listNames(`${dataDir}/${net}`)) {
          // Bookkeeping, not leases: the lock, the allocator's cursor, podplex's lease index.
          if (f === "lock" || f.startsWith("last_reserved_ip.") || f === LEASE_INDEX) continue;
          out.push(`lease ${net}/${f}`);
        }
      }
      for (const f of listNames(stateDir)) out.push(`state ${f}`);
      return out;
    },
    async [Symbol.asyncDispose]() {
      for (const br of bridges) await tryRun("ip", "link", "del", br);
      await netns[Symbol.asyncDispose]();
      Deno.removeSync(dir, { recursive: true });
    },
  };
  return rig;
}
