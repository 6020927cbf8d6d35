/**
 * `podplex net list|show|validate`: the networks a pod can ask for, as the meta-plugin
 * resolves them (local definitions in networksDir, and the cluster network).
 *
 * @module
 */
import { parseConfOrList } from "../conf/netconf.ts";
import { parseNetworkRef } from "../meta/annotations.ts";
import { resolveClusterNetwork, type ResolvedNetwork } from "../meta/networks.ts";
import {
  DEFINITION_EXTENSIONS,
  definitionFiles,
  definitionName,
  type Problem,
  validateDefinition,
} from "./_definitions.ts";
import {
  CONFIG_HELP,
  loadStandaloneConfig,
  localResolver,
  pathExists,
  type StandaloneConfig,
} from "./_config.ts";
import { CONFIG_JSON_FLAGS, guard, parseFlags, subcommandHelp, UsageError } from "./_args.ts";
import { out, printJson, table } from "./_output.ts";

const HELP = `usage: podplex net <command> [flags]

  list                 the networks in networksDir (<networksDir>/<namespace>/<name>.{yaml,
                       yml,json,conf,conflist}) and the cluster network
  show NAME            one network ("ns/name", or "name" in defaultNetworkNamespace): where
                       it comes from and the CNI conf a pod would get
  validate [FILES...]  check definition files (default: every file in networksDir); prints
                       every error with its file and field path; exit 1 on any error
  nodes                the nodes of podplex's cluster network (type podplex-cluster): their
                       subnet leases in etcd, VTEPs, last renewal, whether this node's VTEP
                       has their entries
  leave                this node leaves the cluster network (its lease revoked, its VTEP
                       removed); stop its agent (podplex serve --cluster-network) first

Flags:
${CONFIG_HELP}
  --json             JSON output (list, show, validate, nodes)
  --network FILE     nodes, leave: the cluster network conf (default: the podplex conf's
                     clusterNetwork)
`;

/** One network as `net list --json` prints it. */
export interface NetworkView {
  name: string;
  /** Plugin types in chain order, IPAM in parentheses: `bridge(host-local)`. */
  types: string[];
  source: string;
  cluster: boolean;
  error?: string;
}

/** Entry of `podplex net`. */
export function main(argv: string[]): Promise<number> {
  return guard("podplex net", async () => {
    const [cmd, ...rest] = argv;
    const helped = subcommandHelp(cmd, HELP);
    if (helped !== undefined) return helped;
    if (cmd === "nodes" || cmd === "leave") return await nodesCommand(cmd, rest);
    const { values: f, positionals } = parseFlags(rest, CONFIG_JSON_FLAGS);
    if (f.help) return (out(HELP), 0);
    if (!["list", "show", "validate"].includes(cmd)) {
      throw new UsageError(`Unknown net command "${cmd}"`);
    }
    const cfg = await loadStandaloneConfig(f.config);
    if (cmd === "validate") return await validate(cfg, positionals, !!f.json);
    if (cmd === "list") {
      if (positionals.length) throw new UsageError(`"net list" takes no arguments`);
      return await list(cfg, !!f.json);
    }
    if (positionals.length !== 1) throw new UsageError(`"net show" takes one network name`);
    return await show(cfg, positionals[0], !!f.json);
  });
}

/** `net nodes` and `net leave` (cli/_net_nodes.ts, loaded only for them). */
async function nodesCommand(cmd: "nodes" | "leave", argv: string[]): Promise<number> {
  const { values: f, positionals } = parseFlags(argv, {
    ...CONFIG_JSON_FLAGS,
    network: { type: "string" },
  });
  if (f.help) return (out(HELP), 0);
  if (positionals.length) throw new UsageError(`"net ${cmd}" takes no arguments`);
  const m = await import("./_net_nodes.ts");
  const conf = await m.clusterConf(f.network, f.config);
  return cmd === "nodes" ? await m.printNodes(conf, !!f.json) : await m.leave(conf);
}

/** The plugin types of a conf text, IPAM in parentheses. */
export function typesOf(confText: string): string[] {
  return parseConfOrList(confText).plugins.map((p) => {
    const ipam = (p.conf as { ipam?: { type?: string } }).ipam?.type;
    return ipam ? `${p.type}(${ipam})` : p.type;
  });
}

/** The file a local network came from (the first extension that exists, as resolved). */
async function sourceFile(cfg: StandaloneConfig, net: ResolvedNetwork): Promise<string> {
  if (net.source !== "file") {
    return net.source === "inline" ? "(inline in the podplex conf)" : net.source;
  }
  for (const ext of DEFINITION_EXTENSIONS) {
    const path = `${cfg.conf.networksDir}/${net.ref.namespace}/${net.ref.name}.${ext}`;
    if (await pathExists(path)) return path;
  }
  return "?";
}

async function collect(cfg: StandaloneConfig): Promise<NetworkView[]> {
  const views: NetworkView[] = [];
  const cluster = await resolveClusterNetwork(
    cfg.conf,
    localResolver(cfg, cfg.conf.defaultNetworkNamespace),
  )
    .catch((e) => e as Error);
  const clusterName = cluster instanceof Error ? undefined : cluster?.statusName;
  if (cluster instanceof Error) {
    views.push({
      name: String(cfg.conf.clusterNetwork),
      types: [],
      source: "",
      cluster: true,
      error: cluster.message,
    });
  } else if (cluster && cluster.source !== "file") {
    views.push({
      name: cluster.statusName,
      types: typesOf(cluster.confText),
      source: await sourceFile(cfg, cluster),
      cluster: true,
    });
  }
  const seen = new Set<string>();
  for (const file of await definitionFiles(cfg.conf.networksDir)) {
    const { namespace, name, ext } = definitionName(file);
    if (!(DEFINITION_EXTENSIONS as readonly string[]).includes(ext)) continue;
    const full = `${namespace}/${name}`;
    if (seen.has(full)) continue; // the resolver reads the first extension only
    seen.add(full);
    const view: NetworkView = {
      name: full,
      types: [],
      source: file,
      cluster: full === clusterName,
    };
    try {
      const net = await localResolver(cfg, namespace).resolve({ namespace, name });
      view.types = typesOf(net.confText);
      view.source = await sourceFile(cfg, net);
    } catch (e) {
      view.error = (e as Error).message;
    }
    views.push(view);
  }
  return views;
}

async function list(cfg: StandaloneConfig, json: boolean): Promise<number> {
  const views = await collect(cfg);
  if (json) {
    printJson(views);
    return 0;
  }
  const rows = views.map((v) => [
    v.name + (v.cluster ? " (cluster)" : ""),
    v.error ? "INVALID" : v.types.join(" > "),
    v.error ?? v.source,
  ]);
  out(table(["NETWORK", "PLUGINS", "SOURCE"], rows));
  if (!views.length) out(`(no networks in "${cfg.conf.networksDir}"; conf ${cfg.source})\n`);
  return 0;
}

async function show(cfg: StandaloneConfig, name: string, json: boolean): Promise<number> {
  const ref = parseNetworkRef(name, cfg.conf.defaultNetworkNamespace, "NAME");
  const clusterNet = cfg.conf.clusterNetwork;
  const isCluster = typeof clusterNet === "string" &&
    (clusterNet === name || clusterNet === `${ref.namespace}/${ref.name}`);
  const net = isCluster
    ? (await resolveClusterNetwork(cfg.conf, localResolver(cfg, ref.namespace)))!
    : await localResolver(cfg, ref.namespace).resolve(ref);
  const source = await sourceFile(cfg, net);
  const conf = JSON.parse(net.confText);
  if (json) {
    printJson({
      name: net.statusName,
      source,
      cluster: isCluster,
      types: typesOf(net.confText),
      conf,
    });
    return 0;
  }
  out(`network: ${net.statusName}${isCluster ? " (cluster network)" : ""}\nsource:  ${source}\n`);
  out(`plugins: ${typesOf(net.confText).join(" > ")}\n${JSON.stringify(conf, null, 2)}\n`);
  return 0;
}

async function validate(cfg: StandaloneConfig, files: string[], json: boolean): Promise<number> {
  const targets = files.length ? files : await definitionFiles(cfg.conf.networksDir);
  const problems: Problem[] = [];
  for (const file of targets) problems.push(...(await validateDefinition(file)));
  if (json) printJson({ files: targets, problems });
  else {
    for (const p of problems) out(`${p.file}: ${p.path ? `${p.path}: ` : ""}${p.message}\n`);
    const where = files.length ? "" : ` in "${cfg.conf.networksDir}"`;
    out(`${targets.length} file(s)${where} checked, ${problems.length} error(s)\n`);
  }
  return problems.length ? 1 : 0;
}
