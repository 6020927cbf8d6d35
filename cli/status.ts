/**
 * `podplex status`: is podplex ready for ADD (the meta-plugin's STATUS, through the same
 * conflist a runtime runs), what the state dir holds, and how many host-local leases each
 * network has on disk.
 *
 * @module
 */
import { parseConfOrList } from "../conf/netconf.ts";
import { createStateStore } from "../meta/state.ts";
import { definitionFiles, definitionName } from "./_definitions.ts";
import { cniPath, CONFIG_HELP, localResolver, type StandaloneConfig } from "./_config.ts";
import { guard, noArgCommand } from "./_args.ts";
import { out, printJson, table } from "./_output.ts";
import { runVerb } from "./_local_runtime.ts";
import type { Root } from "./root.ts";

const HELP = `usage: podplex status [flags]

Readiness (the meta-plugin's STATUS: readiness indicator file, cluster network's plugins),
the state dir with its pods and attachments, and the host-local leases of every network
(local definitions and networks pods use), counted in their dataDir.
Exit 0 when ready, 1 when not.

Flags:
${CONFIG_HELP}
  --json             JSON output
`;

/** Leases of one network. */
export interface NetworkLeases {
  network: string;
  attachments: number;
  /** host-local lease files (IPs) in `dir`; absent when the network has no host-local IPAM. */
  leases?: number;
  dir?: string;
}

/** What `status --json` prints. */
export interface StatusReport {
  ready: boolean;
  reason?: string;
  config: string;
  stateDir: string;
  pods: number;
  attachments: number;
  networks: NetworkLeases[];
}

const LEASE_FILE = /^[0-9a-f.:]+$/i;

/** Counts the lease files (named by IP) in a host-local directory. */
export async function countLeases(dir: string): Promise<number> {
  let n = 0;
  try {
    for await (const e of Deno.readDir(dir)) if (e.isFile && LEASE_FILE.test(e.name)) n++;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return n;
}

/** The host-local lease directories of a conf text (one per plugin using host-local). */
export function leaseDirsOf(confText: string): string[] {
  const list = parseConfOrList(confText);
  return list.plugins.flatMap((p) => {
    const ipam = (p.conf as { ipam?: { type?: string; dataDir?: string } }).ipam;
    if (ipam?.type !== "host-local") return [];
    const base = (ipam.dataDir || "/var/lib/cni/networks").replace(/\/+$/, "");
    return [`${base}/${list.name}`];
  });
}

/** Conf texts of every network known: local definitions, then what pods use. */
async function knownNetworks(cfg: StandaloneConfig, statusConfs: Map<string, string>) {
  const confs = new Map<string, string>();
  for (const file of await definitionFiles(cfg.conf.networksDir)) {
    const { namespace, name } = definitionName(file);
    const key = `${namespace}/${name}`;
    if (confs.has(key)) continue;
    try {
      const net = await localResolver(cfg, namespace).resolve({ namespace, name });
      confs.set(key, net.confText);
    } catch {
      // An invalid definition: 'net validate' reports it.
    }
  }
  for (const [k, v] of statusConfs) if (!confs.has(k)) confs.set(k, v);
  return confs;
}

/** Builds the status report. */
export async function statusReport(root: Root, cfg: StandaloneConfig): Promise<StatusReport> {
  const report: StatusReport = {
    ready: true,
    config: cfg.source,
    stateDir: cfg.conf.stateDir,
    pods: 0,
    attachments: 0,
    networks: [],
  };
  try {
    await runVerb(root, cfg, "STATUS", { env: { path: cniPath() } });
  } catch (e) {
    report.ready = false;
    report.reason = (e as Error).message;
  }
  const states = await createStateStore(cfg.conf.stateDir, { warn: () => {} }).list();
  report.pods = states.length;
  const perNetwork = new Map<string, number>();
  const used = new Map<string, string>();
  for (const s of states) {
    for (const a of s.attachments) {
      report.attachments++;
      perNetwork.set(a.network, (perNetwork.get(a.network) ?? 0) + 1);
      used.set(a.network, a.confText);
    }
  }
  for (const [network, confText] of await knownNetworks(cfg, used)) {
    const entry: NetworkLeases = { network, attachments: perNetwork.get(network) ?? 0 };
    try {
      const dirs = leaseDirsOf(confText);
      if (dirs.length) {
        entry.dir = dirs.join(",");
        entry.leases = 0;
        for (const d of dirs) entry.leases += await countLeases(d);
      }
    } catch {
      // unparsable conf: no lease count
    }
    report.networks.push(entry);
  }
  return report;
}

/** Entry of `podplex status`. */
export function main(argv: string[], root: Root): Promise<number> {
  return guard("podplex status", async () => {
    const cmd = await noArgCommand(argv, "status", HELP);
    if (!cmd) return 0;
    const report = await statusReport(root, cmd.cfg);
    if (cmd.json) printJson(report);
    else {
      out(`ready:     ${report.ready ? "yes" : `no: ${report.reason}`}\n`);
      out(`config:    ${report.config}\nstate dir: ${report.stateDir}\n`);
      out(`pods:      ${report.pods} (${report.attachments} attachments)\n\n`);
      const rows = report.networks.map((n) => [
        n.network,
        String(n.attachments),
        n.leases === undefined ? "-" : String(n.leases),
        n.dir ?? "-",
      ]);
      out(table(["NETWORK", "ATTACHMENTS", "LEASES", "LEASE DIR"], rows));
    }
    return report.ready ? 0 : 1;
  });
}
