/**
 * podplex installed into a private containerd (tests/_containerd.ts) as a node gets it:
 * `podplex install --cluster-network kube-system/cluster` copies the artifact into the CNI bin
 * dir and writes the conflist into the conf dir, and the networks live in a networks dir of
 * bridge + host-local definitions on `ppc` bridges in 10.161.0.0/16. Plus the kernel's and
 * the disk's truth about a pod (its addresses in its netns) and about what is left after
 * Stop/Remove (bridge ports, leases, state files, netns pins).
 *
 * @module
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import type { Containerd } from "./_containerd.ts";
import { LAUNCHER, until } from "./_containerd.ts";
import { ipJson, leaseFiles, ppName, run, stateFiles, tryRun } from "./testutils.ts";

/** The networks and dirs podplex runs with in one test. */
export interface PodplexSetup extends AsyncDisposable {
  networksDir: string;
  stateDir: string;
  dataDir: string;
  /** The cluster network's bridge first, then one per extra network (net-a, net-b...). */
  bridges: string[];
  /** The subnet of each, same order ("10.161.X.0/24"). */
  subnets: string[];
  /** The conflist as install wrote it. */
  conflist: string;
  /** What install printed. */
  installOutput: string;
}

/** How podplex is set up. */
export interface SetupOptions {
  /** Extra networks in namespace `default` (net-a, net-b...). */
  extra?: number;
  /** Third octet of the first subnet (each test its own range). */
  octet: number;
  /** More `podplex install` flags (e.g. `--cni-version`). */
  installArgs?: string[];
  /** Capabilities the extra networks declare (e.g. ips, mac: a selection element's). */
  capabilities?: Record<string, boolean>;
  /** A plugin chained after the bridge of every extra network (they become conflists). */
  chained?: Record<string, unknown>;
}

function bridgeNet(
  name: string,
  bridge: string,
  subnet: string,
  dataDir: string,
  capabilities?: Record<string, boolean>,
) {
  return JSON.stringify({
    cniVersion: "1.0.0",
    name,
    type: "bridge",
    bridge,
    isGateway: true,
    ...(capabilities ? { capabilities } : {}),
    ipam: { type: "host-local", subnet, dataDir },
  });
}

/** Writes the networks and runs `podplex install` into the containerd's bin and conf dirs. */
export async function installPodplex(c: Containerd, o: SetupOptions): Promise<PodplexSetup> {
  const base = `${c.dir}/podplex`;
  const networksDir = `${base}/networks.d`;
  const stateDir = `${base}/state`;
  const dataDir = `${base}/leases`;
  await Deno.mkdir(`${networksDir}/kube-system`, { recursive: true });
  await Deno.mkdir(`${networksDir}/default`, { recursive: true });
  const bridges: string[] = [];
  const subnets: string[] = [];
  const names = ["kube-system/cluster"];
  for (let i = 0; i < (o.extra ?? 0); i++) names.push(`default/net-${String.fromCharCode(97 + i)}`);
  for (const [i, full] of names.entries()) {
    const br = ppName("c");
    const subnet = `10.161.${o.octet + i}.0/24`;
    bridges.push(br);
    subnets.push(subnet);
    const [ns, name] = full.split("/");
    await Deno.writeTextFile(
      `${networksDir}/${ns}/${name}.json`,
      i > 0 && o.chained
        ? JSON.stringify({
          cniVersion: "1.0.0",
          name,
          plugins: [JSON.parse(bridgeNet(name, br, subnet, dataDir, o.capabilities)), o.chained],
        })
        : bridgeNet(name, br, subnet, dataDir, i > 0 ? o.capabilities : undefined),
    );
  }
  const out = await new Deno.Command(LAUNCHER, {
    args: [
      "install",
      ...["--bin-dir", c.binDir, "--conf-dir", c.confDir],
      ...["--service-account-dir", `${base}/no-service-account`],
      ...["--cluster-network", "kube-system/cluster"],
      ...["--networks-dir", networksDir, "--state-dir", stateDir],
      ...(o.installArgs ?? []),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const installOutput = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`podplex install failed:\n${installOutput}`);
  const conflist = await Deno.readTextFile(`${c.confDir}/00-podplex.conflist`);
  return {
    networksDir,
    stateDir,
    dataDir,
    bridges,
    subnets,
    conflist,
    installOutput,
    async [Symbol.asyncDispose]() {
      for (const br of bridges) await tryRun("ip", "link", "del", br);
    },
  };
}

/** The IPv4 addresses (CIDR) of each interface in a sandbox's netns, from the kernel. */
export async function podAddrs(c: Containerd, netns: string): Promise<Map<string, string[]>> {
  const text = await c.inNs("ip", "-j", "-n", netns.split("/").pop()!, "-4", "addr", "show");
  const links = JSON.parse(text) as {
    ifname: string;
    addr_info: { local: string; prefixlen: number }[];
  }[];
  const out = new Map<string, string[]>();
  for (const l of links) {
    if (l.ifname === "lo") continue;
    out.set(l.ifname, l.addr_info.map((a) => `${a.local}/${a.prefixlen}`));
  }
  return out;
}

/** The ports (veths) enslaved to a host bridge. */
export async function bridgePorts(bridge: string): Promise<string[]> {
  if (!(await tryRun("ip", "link", "show", "dev", bridge))) return [];
  return (await ipJson(undefined, "link", "show", "master", bridge)).map((l) => String(l.ifname));
}

/**
 * Asserts nothing of any pod is left: no sandbox in containerd, no port on the bridges, no
 * lease, no podplex state file, no netns pin.
 */
export async function assertNothingLeft(c: Containerd, p: PodplexSetup): Promise<void> {
  assertEquals(await c.cri.listPodSandbox(), [], "no sandbox left in containerd");
  for (const br of p.bridges) assertEquals(await bridgePorts(br), [], `no port left on ${br}`);
  assertEquals(leaseFiles(p.dataDir), [], "no host-local lease left");
  assertEquals(stateFiles(p.stateDir).filter((f) => !f.startsWith(".")), [], "no state file left");
  assertEquals(await c.netnsPins(), [], "no netns pin left");
}

/** Stops and removes a sandbox as kubelet does. */
export async function stopRemove(c: Containerd, id: string): Promise<void> {
  await c.cri.stopPodSandbox(id);
  await c.cri.removePodSandbox(id);
}

/** The IP without its prefix length. */
export const bare = (cidr: string) => cidr.split("/")[0];

/** Whether `ip` lies in the /24 `subnet`. */
export const inSubnet24 = (ip: string, subnet: string) =>
  ip.split(".").slice(0, 3).join(".") === subnet.split(".").slice(0, 3).join(".");

/** Runs `cmd` and returns its stdout (re-export for the tests). */
export { run };

/** A `podplex serve` the tests started. */
export interface Served extends AsyncDisposable {
  /** Its stderr so far (a line per call). */
  log(): string;
  /** How many calls of `verb` ended (the daemon's "exit" log lines). */
  served(verb: string): number;
  /** `podplex_requests_total` of `verb` and result `code` in the daemon's metrics scrape. */
  requests(verb: string, code?: number): Promise<number>;
}

/**
 * `podplex serve` on `socket`, in containerd's mount namespace (where its netns pins are);
 * containerd must have been started with PODPLEX_SOCKET naming it, so the installed shim
 * forwards its calls.
 */
export async function serveInContainerd(c: Containerd, socket: string): Promise<Served> {
  const metrics = `${socket}.metrics`;
  const child = c.spawnInNs(LAUNCHER, ["serve", "--socket", socket, "--metrics-socket", metrics]);
  let log = "";
  const dec = new TextDecoder();
  const reading = (async () => {
    for await (const chunk of child.stderr) log += dec.decode(chunk);
  })();
  child.stdout.cancel();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await child.status;
    await reading;
  };
  try {
    await until(
      "podplex serve to listen (30 s)",
      30_000,
      () => Promise.resolve(/podplex serve: listening on/.test(log)),
    );
  } catch (e) {
    await stop();
    throw new Error(`${e}\n${log}`);
  }
  const served: Served = {
    log: () => log,
    served: (verb) =>
      log.split("\n").filter((l) => l.includes(`: ${verb} `) && l.includes(": exit")).length,
    async requests(verb, code = 0) {
      const text = await run("curl", "-sf", "--unix-socket", metrics, "http://podplex/metrics");
      const line = text.split("\n").find((l) =>
        l.startsWith("podplex_requests_total{") && l.includes(`verb="${verb}"`) &&
        l.includes(`code="${code}"`)
      );
      return line ? Number(line.split(" ").pop()) : 0;
    },
    [Symbol.asyncDispose]: stop,
  };
  return served;
}
