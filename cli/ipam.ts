/**
 * `podplex ipam ls|show|reconcile`: the cluster IPAM (types `whereabouts` and
 * `podplex-ipam`) for users: pools with their blocks by node, addresses by pod, and the
 * reconciler.
 *
 * etcd and the node come from `--network FILE` (a network conf whose `ipam` is the cluster
 * IPAM: its `etcd_host`, TLS files, `etcd_prefix`, `dataDir`, `node_name`) or from flags,
 * flags winning.
 *
 * @module
 */
import { parseClusterConf } from "../delegates/ipam/cluster/conf.ts";
import type { ClusterConf } from "../delegates/ipam/cluster/conf.ts";
import { guard, parseFlags, subcommandHelp, UsageError } from "./_args.ts";
import { loadStandaloneConfig } from "./_config.ts";
import { out, printJson, table } from "./_output.ts";
import type { AddressRecord } from "../delegates/ipam/cluster/keys.ts";

const HELP = `usage: podplex ipam <ls|show|reconcile> [flags]

  ls          pools: address spaces, blocks by node, addresses in use
  show        addresses by pod (--pod NS/NAME or --node NODE to filter)
  reconcile   replay the node's DEL journal; release this node's addresses whose attachment
              is not in podplex's state dir, and (with --kubeconfig or the podplex conf's
              kubeconfig) other nodes' addresses whose pod the API server no longer has;
              release blocks empty past the grace

Flags:
  --network FILE     a network conf whose ipam is whereabouts/podplex-ipam (etcd, node, dataDir)
  --etcd URLS        etcd endpoints, comma-separated
  --etcd-ca FILE, --etcd-cert FILE, --etcd-key FILE
  --prefix P         etcd prefix (default /podplex/ipam/v1)
  --node NAME        this node (default: PODPLEX_NODE_NAME, NODENAME, the host name)
  --data-dir DIR     the node-local dir (journal; default /var/lib/cni/podplex-ipam)
  --config FILE      podplex conf (reconcile: its stateDir says which attachments exist)
  --state-dir DIR    instead of the conf's stateDir
  --kubeconfig FILE  reconcile against the API server's pods
  --min-age-ms N     keep addresses younger than this (default 300000)
  --grace-ms N       release blocks empty this long (default 60000)
  --pod NS/NAME, --json
`;

const FLAGS = {
  network: { type: "string" },
  etcd: { type: "string" },
  "etcd-ca": { type: "string" },
  "etcd-cert": { type: "string" },
  "etcd-key": { type: "string" },
  prefix: { type: "string" },
  node: { type: "string" },
  "data-dir": { type: "string" },
  config: { type: "string" },
  "state-dir": { type: "string" },
  kubeconfig: { type: "string" },
  "min-age-ms": { type: "string" },
  "grace-ms": { type: "string" },
  pod: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

type Flags = ReturnType<typeof parseFlags<typeof FLAGS>>["values"];

/** The cluster IPAM settings of the flags (a network conf, then flags over it). */
async function settings(f: Flags): Promise<ClusterConf> {
  let ipam: Record<string, unknown> = {};
  if (f.network) {
    const raw = JSON.parse(await Deno.readTextFile(f.network));
    ipam = { ...(raw.ipam ?? raw.plugins?.find((p: { ipam?: unknown }) => p.ipam)?.ipam ?? {}) };
  }
  if (f.etcd) ipam.etcd_host = f.etcd;
  if (f["etcd-ca"]) ipam.etcd_ca_cert_file = f["etcd-ca"];
  if (f["etcd-cert"]) ipam.etcd_cert_file = f["etcd-cert"];
  if (f["etcd-key"]) ipam.etcd_key_file = f["etcd-key"];
  if (f.prefix) ipam.etcd_prefix = f.prefix;
  if (f.node) ipam.node_name = f.node;
  if (f["data-dir"]) ipam.dataDir = f["data-dir"];
  if (!ipam.etcd_host && !ipam.etcd_endpoints) throw new UsageError(`Give "--etcd" or "--network"`);
  // Only etcd and node matter here: a placeholder range satisfies the parser.
  if (!ipam.range && !ipam.ipRanges) ipam.range = "192.0.2.0/30";
  return parseClusterConf({ name: "ipam", ipam });
}

function num(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) {
    throw new UsageError(`"--${flag}" must be a number, not "${text}"`);
  }
  return n;
}

/** Entry of `podplex ipam`. */
export function main(argv: string[]): Promise<number> {
  return guard("podplex ipam", async () => {
    const [cmd, ...rest] = argv;
    const help = subcommandHelp(cmd, HELP);
    if (help !== undefined) return help;
    const { values: f } = parseFlags(rest, FLAGS, false);
    if (f.help) return (out(HELP), 0);
    if (cmd !== "ls" && cmd !== "show" && cmd !== "reconcile") {
      throw new UsageError(`Unknown ipam command "${cmd}"`);
    }
    const conf = await settings(f);
    const { openEtcd } = await import("../delegates/ipam/cluster/cluster.ts");
    const etcd = await openEtcd(conf.etcd);
    try {
      if (cmd === "reconcile") return await runReconcile(f, conf, etcd);
      const { readSpaces } = await import("../delegates/ipam/cluster/reconcile.ts");
      const spaces = await readSpaces(etcd, conf.etcd.prefix);
      return cmd === "ls" ? ls(spaces, !!f.json) : show(spaces, f);
    } finally {
      etcd.close();
    }
  });
}

type Spaces = Awaited<
  ReturnType<typeof import("../delegates/ipam/cluster/reconcile.ts").readSpaces>
>;

function blockText(b: Spaces[number]["blocks"][number]): string {
  const ip = b.block.network;
  const v = ip.value;
  const text = ip.family === 4
    ? [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join(".")
    : v.toString(16);
  return `${text}/${b.block.prefix}`;
}

function ls(spaces: Spaces, json: boolean): number {
  const rows = spaces.map((s) => ({
    space: decodeURIComponent(s.space),
    addresses: s.records.length,
    blocks: s.blocks.map((b) => ({ block: blockText(b), node: b.node })),
  }));
  if (json) return (printJson(rows), 0);
  const lines: string[][] = [];
  for (const r of rows) {
    const byNode = new Map<string, string[]>();
    for (const b of r.blocks) byNode.set(b.node, [...(byNode.get(b.node) ?? []), b.block]);
    const blocks = [...byNode].map(([n, bs]) => `${n}: ${bs.join(" ")}`).join("; ") || "-";
    lines.push([r.space, String(r.addresses), blocks]);
  }
  out(table(["SPACE", "ADDRESSES", "BLOCKS BY NODE"], lines));
  return 0;
}

function show(spaces: Spaces, f: Flags): number {
  const recs: Array<AddressRecord & { space: string }> = [];
  for (const s of spaces) {
    for (const r of s.records) {
      if (f.pod && r.pod !== f.pod) continue;
      if (f.node && r.node !== f.node) continue;
      recs.push({ ...r, space: decodeURIComponent(s.space) });
    }
  }
  recs.sort((a, b) => a.pod.localeCompare(b.pod) || a.ip.localeCompare(b.ip));
  if (f.json) return (printJson(recs), 0);
  out(table(
    ["POD", "ADDRESS", "NODE", "CONTAINER", "IFNAME", "SPACE"],
    recs.map((r) => [r.pod || "-", r.ip, r.node, r.containerId.slice(0, 12), r.ifname, r.space]),
  ));
  return 0;
}

async function runReconcile(
  f: Flags,
  conf: ClusterConf,
  etcd: import("../clients/etcd/client.ts").EtcdClient,
): Promise<number> {
  const { reconcile } = await import("../delegates/ipam/cluster/reconcile.ts");
  const { replayJournalDir, journalDir } = await import("../delegates/ipam/cluster/journal.ts");
  const replayed = await replayJournalDir(
    etcd,
    journalDir(conf.dataDir, conf.nodeName),
    conf.etcd.prefix,
    conf.nodeName,
  );
  // This node's records are judged by its state dir (a pod that still exists may hold an
  // address of a sandbox it no longer has); other nodes' only with the API server, by pod.
  const kubeconfig = f.kubeconfig ?? await confKubeconfig(f);
  const state = await stateAlive(f);
  const api = kubeconfig ? await podAlive(kubeconfig) : undefined;
  try {
    const report = await reconcile({
      etcd,
      prefix: conf.etcd.prefix,
      node: conf.nodeName,
      scope: api ? "all" : "node",
      alive: (r) => r.node === conf.nodeName ? state.fn(r) : api?.fn(r),
      minAgeMs: num(f["min-age-ms"], "min-age-ms"),
      graceMs: num(f["grace-ms"], "grace-ms"),
    });
    if (f.json) printJson({ journalReplayed: replayed, ...report });
    else {
      out(
        `journal entries replayed: ${replayed}; addresses released: ${report.released.length}` +
          `; blocks marked empty: ${report.blocksMarked.length}; blocks released: ` +
          `${report.blocksReleased.length}\n`,
      );
      for (const r of report.released) {
        out(`released ${r.ip} (${r.pod || r.containerId} ${r.ifname})\n`);
      }
    }
  } finally {
    api?.close();
  }
  return 0;
}

/** The podplex conf's kubeconfig, when it names one and the file exists. */
async function confKubeconfig(f: Flags): Promise<string | undefined> {
  if (f["state-dir"] && !f.config) return undefined; // no podplex conf in play
  try {
    const k = (await loadStandaloneConfig(f.config)).conf.kubeconfig;
    return k && await Deno.stat(k).then(() => true, () => false) ? k : undefined;
  } catch {
    return undefined;
  }
}

/** Attachments that exist = the node's podplex state dir. */
async function stateAlive(f: Flags) {
  const dir = f["state-dir"] ?? (await loadStandaloneConfig(f.config)).conf.stateDir;
  const { createStateStore } = await import("../meta/state.ts");
  const keys = new Set<string>();
  for (const s of await createStateStore(dir, { warn: () => {} }).list()) {
    for (const a of s.attachments) keys.add(`${s.containerId}/${a.ifname}`);
  }
  return { fn: (r: AddressRecord) => keys.has(`${r.containerId}/${r.ifname}`), close() {} };
}

/** Attachments that exist = pods the API server still has (records without a pod: keep). */
async function podAlive(kubeconfig: string) {
  const { createKubeClient } = await import("../clients/k8s/client.ts");
  const kube = createKubeClient({ kubeconfig });
  return {
    fn: async (r: AddressRecord) => {
      const slash = r.pod.indexOf("/");
      if (slash < 0) return undefined;
      return (await kube.getPod(r.pod.slice(0, slash), r.pod.slice(slash + 1))) !== null;
    },
    close: () => kube.close(),
  };
}

/**
 * What the ipam controller (controllers/ipam) needs for `podplex serve --ipam-network FILE`,
 * read from that network conf: its etcd client, prefix, node and data dir, and whether an
 * attachment exists by the node's podplex state dir, read again each pass (the conf's, as
 * `podplex ipam reconcile` without flags).
 *
 * @returns the settings and a `close()` that closes the etcd client
 */
export async function ipamSettings(networkFile: string) {
  const conf = await settings({ network: networkFile } as Flags);
  const { openEtcd } = await import("../delegates/ipam/cluster/cluster.ts");
  const etcd = await openEtcd(conf.etcd);
  return {
    etcd,
    prefix: conf.etcd.prefix,
    node: conf.nodeName,
    dataDir: conf.dataDir,
    // Read per pass: a pod added after the daemon started must count as alive.
    attachments: async () => (await stateAlive({} as Flags)).fn,
    close: () => etcd.close(),
  };
}
