/**
 * A LAN with a real DHCP server for tests: dnsmasq (Debian's `dnsmasq-base`, never the
 * system service) in its own netns, in the foreground, with its own lease file, pid file and
 * options on the command line, bound only to its end of a veth. The other end is where pods
 * attach: the veth itself (a macvlan master) or a bridge it is a port of, in a netns of the
 * test's (or the host's, for the daemon tests).
 *
 * @module
 */
import { ppName, run, tempNetns, type TestNetns, tryRun } from "./testutils.ts";

/** One line of dnsmasq's lease file. */
export interface DnsmasqLease {
  /** Expiry, seconds since the epoch. */
  expiry: number;
  mac: string;
  ip: string;
  hostname: string;
  clientId: string;
}

/** How the LAN is built. */
export interface LanOptions {
  /** `macvlan`: pods attach to the veth; `bridge`: to a bridge holding it. */
  kind: "macvlan" | "bridge";
  /** The netns name pods attach in (default: a new one; "" for the host's). */
  hostNs?: string;
  /** dnsmasq's lease time (its minimum is 2m). */
  lease?: string;
  /** T1 and T2 in seconds, sent as options 58/59. */
  t1?: number;
  t2?: number;
  /** Extra dnsmasq arguments, given the LAN's first three octets. */
  extra?: (prefix: string) => string[];
}

/** A running LAN. */
export interface DhcpLan extends AsyncDisposable {
  /** The first three octets, e.g. `10.206.37`. */
  prefix: string;
  /** The netns pods' host side lives in ("" for the host's). */
  hostNs: string;
  /** The link pods attach to (macvlan master or bridge name). */
  attach: string;
  serverNs: string;
  dir: string;
  leaseFile: string;
  leases(): DnsmasqLease[];
  /** dnsmasq's log so far. */
  log(): string;
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** Whether dnsmasq is installed (scripts/setup.sh installs `dnsmasq-base`). */
export const haveDnsmasq = await tryRun("dnsmasq", "--version");

function parseLeases(text: string): DnsmasqLease[] {
  return text.split("\n").filter((l) => l.trim()).map((l) => {
    const [expiry, mac, ip, hostname, clientId] = l.trim().split(/\s+/);
    return { expiry: Number(expiry), mac, ip, hostname, clientId };
  });
}

function dnsmasqArgs(o: LanOptions, dev: string, prefix: string, dir: string): string[] {
  const args = [
    "--keep-in-foreground",
    "--conf-file=/dev/null",
    "--no-resolv",
    "--no-hosts",
    "--port=0",
    "--bind-interfaces",
    `--interface=${dev}`,
    "--except-interface=lo",
    "--user=root",
    "--group=root",
    "--dhcp-authoritative",
    "--no-ping",
    `--dhcp-range=${prefix}.10,${prefix}.250,255.255.255.0,${o.lease ?? "2m"}`,
    `--dhcp-leasefile=${dir}/leases`,
    `--pid-file=${dir}/pid`,
    `--log-facility=${dir}/log`,
    "--log-dhcp",
    `--dhcp-option=option:router,${prefix}.1`,
    `--dhcp-option=option:dns-server,${prefix}.53`,
    "--dhcp-option=option:domain-name,lan.test",
    "--dhcp-option=option:domain-search,lan.test,corp.test",
  ];
  if (o.t1) args.push(`--dhcp-option=option:T1,${o.t1}`);
  if (o.t2) args.push(`--dhcp-option=option:T2,${o.t2}`);
  return [...args, ...(o.extra?.(prefix) ?? [])];
}

async function ensureHostNs(o: LanOptions): Promise<{ name: string; owned?: TestNetns }> {
  if (o.hostNs !== undefined) return { name: o.hostNs };
  const owned = await tempNetns("dh");
  return { name: owned.name, owned };
}

/**
 * Builds the LAN and starts dnsmasq on it. Dispose it (`await using`) to stop dnsmasq and
 * remove every link, netns and file it made.
 */
export async function startLan(o: LanOptions): Promise<DhcpLan> {
  const prefix = `10.206.${crypto.getRandomValues(new Uint8Array(1))[0]}`;
  const server = await tempNetns("ds");
  const host = await ensureHostNs(o);
  const dir = await Deno.makeTempDir({ prefix: "ppdhcp" });
  const hostEnd = ppName("dv");
  const srvEnd = ppName("dv");
  const bridge = o.kind === "bridge" ? ppName("db") : "";
  const inHost = host.name ? ["-n", host.name] : [];
  let child: Deno.ChildProcess | undefined;
  const cleanup = async () => {
    await stop();
    await tryRun("ip", ...inHost, "link", "del", hostEnd);
    if (bridge) await tryRun("ip", ...inHost, "link", "del", bridge);
    await server[Symbol.asyncDispose]();
    await host.owned?.[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const stop = async () => {
    if (!child) return;
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await child.status;
    child = undefined;
  };
  const start = async () => {
    if (child) return;
    child = new Deno.Command("ip", {
      args: ["netns", "exec", server.name, "dnsmasq", ...dnsmasqArgs(o, srvEnd, prefix, dir)],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    // Ready once it wrote its pid file (after binding its DHCP socket).
    for (let i = 0; i < 100; i++) {
      if (await Deno.stat(`${dir}/pid`).then(() => true, () => false)) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(
      `dnsmasq did not start: ${await Deno.readTextFile(`${dir}/log`).catch(() => "")}`,
    );
  };
  try {
    await run("ip", ...inHost, "link", "add", hostEnd, "type", "veth", "peer", "name", srvEnd);
    await run("ip", ...inHost, "link", "set", srvEnd, "netns", server.name);
    await run("ip", "-n", server.name, "addr", "add", `${prefix}.1/24`, "dev", srvEnd);
    await run("ip", "-n", server.name, "link", "set", srvEnd, "up");
    if (bridge) {
      await run("ip", ...inHost, "link", "add", bridge, "type", "bridge");
      await run("ip", ...inHost, "link", "set", hostEnd, "master", bridge);
      await run("ip", ...inHost, "link", "set", bridge, "up");
    }
    await run("ip", ...inHost, "link", "set", hostEnd, "up");
    await start();
  } catch (e) {
    await cleanup();
    throw e;
  }
  return {
    prefix,
    hostNs: host.name,
    attach: bridge || hostEnd,
    serverNs: server.name,
    dir,
    leaseFile: `${dir}/leases`,
    leases: () => {
      try {
        return parseLeases(Deno.readTextFileSync(`${dir}/leases`));
      } catch {
        return [];
      }
    },
    log: () => {
      try {
        return Deno.readTextFileSync(`${dir}/log`);
      } catch {
        return "";
      }
    },
    stop: async () => {
      await stop();
      await Deno.remove(`${dir}/pid`).catch(() => {});
    },
    start,
    [Symbol.asyncDispose]: cleanup,
  };
}

/** Waits (bounded) until `pred` holds, polling every 100 ms. */
export async function waitFor(
  what: string,
  pred: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
