/**
 * `podplex graph`: pods and the networks they are attached to, as a Mermaid flowchart (the
 * default; GitHub renders it) or Graphviz DOT.
 *
 * @module
 */
import { listPods } from "./_pod_list.ts";
import type { Root } from "./root.ts";
import type { PodView } from "./_pod_view.ts";
import { definitionFiles, definitionName } from "./_definitions.ts";
import { CONFIG_HELP, loadStandaloneConfig } from "./_config.ts";
import { guard, parseFlags, UsageError } from "./_args.ts";
import { out } from "./_output.ts";

const HELP = `usage: podplex graph [--format mermaid|dot] [flags]

Pods (from the state dir) and networks (local definitions and those pods use), one edge
per pod interface labelled with its name and IPs. When the cluster network is podplex's
(type podplex-cluster), also its nodes (subnet, underlay address) on the VXLAN overlay,
read from etcd.

Flags:
  --format F         mermaid (default) or dot
  --network FILE     the cluster network conf (default: the podplex conf's clusterNetwork)
  --no-nodes         leave the cluster network's nodes out (no etcd read)
${CONFIG_HELP}
`;

/** The cluster network's nodes as the graph draws them. */
export interface OverlayView {
  /** The network pods attach to it as (`ns/name`), if known. */
  network?: string;
  cidr: string;
  vni: number;
  nodes: Array<{ node: string; subnet: string; publicIp: string; self: boolean }>;
}

/** An identifier safe in both Mermaid and DOT. */
function id(prefix: string, name: string): string {
  return `${prefix}_${name.replace(/[^a-zA-Z0-9]/g, "_")}`;
}

function edgeLabel(iface: { interface: string; ips: string[] }): string {
  return [iface.interface, ...iface.ips].join(" ");
}

/**
 * Renders pods and networks.
 *
 * @param pods the pods with their interfaces
 * @param networks every network name to show (those pods use are added)
 * @param format "mermaid" or "dot"
 */
export function renderGraph(
  pods: PodView[],
  networks: string[],
  format: "mermaid" | "dot",
  overlay?: OverlayView,
): string {
  const nets = new Set(networks);
  for (const p of pods) for (const i of p.interfaces) if (i.network) nets.add(i.network);
  const sorted = [...nets].sort();
  const lines: string[] = [];
  const q = (s: string) => JSON.stringify(s);
  if (format === "mermaid") {
    lines.push("flowchart LR");
    for (const n of sorted) lines.push(`  ${id("net", n)}((${q(n)}))`);
    for (const p of pods) {
      lines.push(
        `  ${id("pod", `${p.namespace}/${p.name}`)}[${q(`pod ${p.namespace}/${p.name}`)}]`,
      );
      for (const i of p.interfaces) {
        if (!i.network) continue;
        lines.push(
          `  ${id("pod", `${p.namespace}/${p.name}`)} -- ${q(edgeLabel(i))} --- ${
            id("net", i.network)
          }`,
        );
      }
    }
  } else {
    lines.push("graph podplex {", "  rankdir=LR;");
    for (const n of sorted) lines.push(`  ${id("net", n)} [label=${q(n)}, shape=ellipse];`);
    for (const p of pods) {
      const pid = id("pod", `${p.namespace}/${p.name}`);
      lines.push(`  ${pid} [label=${q(`pod ${p.namespace}/${p.name}`)}, shape=box];`);
      for (const i of p.interfaces) {
        if (i.network) {
          lines.push(`  ${pid} -- ${id("net", i.network)} [label=${q(edgeLabel(i))}];`);
        }
      }
    }
  }
  if (overlay) lines.push(...overlayLines(overlay, format));
  if (format === "dot") lines.push("}");
  return lines.join("\n") + "\n";
}

/**
 * The overlay: a hub for the VXLAN segment, a box per node (its subnet) joined to it by its
 * underlay address, and this node joined to the cluster network pods attach to.
 */
function overlayLines(o: OverlayView, format: "mermaid" | "dot"): string[] {
  const q = (s: string) => JSON.stringify(s);
  const hub = id("overlay", `vni${o.vni}`);
  const hubLabel = `VXLAN VNI ${o.vni} ${o.cidr}`;
  const out: string[] = [];
  if (format === "mermaid") out.push(`  ${hub}{{${q(hubLabel)}}}`);
  else out.push(`  ${hub} [label=${q(hubLabel)}, shape=hexagon];`);
  for (const n of o.nodes) {
    const nid = id("node", n.node);
    const label = `node ${n.node} ${n.subnet}${n.self ? " (this node)" : ""}`;
    if (format === "mermaid") {
      out.push(`  ${nid}[[${q(label)}]]`, `  ${nid} -- ${q(n.publicIp)} --- ${hub}`);
      if (n.self && o.network) out.push(`  ${id("net", o.network)} --- ${nid}`);
    } else {
      out.push(`  ${nid} [label=${q(label)}, shape=box3d];`);
      out.push(`  ${nid} -- ${hub} [label=${q(n.publicIp)}];`);
      if (n.self && o.network) out.push(`  ${id("net", o.network)} -- ${nid};`);
    }
  }
  return out;
}

/** The cluster network's nodes, when it is podplex's and etcd answers (else undefined). */
async function overlayOf(
  network: string | undefined,
  config: string | undefined,
  clusterName: string | undefined,
): Promise<OverlayView | undefined> {
  const m = await import("./_net_nodes.ts");
  let conf;
  try {
    conf = await m.clusterConf(network, config);
  } catch (err) {
    if (network) throw err;
    return undefined; // the cluster network is not podplex's: nothing to draw
  }
  const r = await m.listNodes({
    ...conf,
    etcd: { ...conf.etcd, timeoutMs: Math.min(conf.etcd.timeoutMs, 2000) },
  });
  // Dual stack: both families in one label (an IPv6-only node's PublicIP is 0.0.0.0).
  const both = (...xs: Array<string | undefined>) =>
    xs.filter((x) => x && x !== "0.0.0.0").join(" ");
  const nodes = [...r.nodes].sort((a, b) => a.node.localeCompare(b.node)).map((n) => ({
    node: n.node,
    subnet: both(n.subnet, n.subnet6),
    publicIp: both(n.publicIp, n.publicIpv6),
    self: n.self,
  }));
  const view: OverlayView = { cidr: both(r.network, r.network6), vni: r.vni, nodes };
  if (clusterName) view.network = clusterName;
  return view;
}

/** Entry of `podplex graph`. */
export function main(argv: string[], root: Root): Promise<number> {
  return guard("podplex graph", async () => {
    const { values: f, positionals } = parseFlags(argv, {
      config: { type: "string" },
      format: { type: "string" },
      network: { type: "string" },
      "no-nodes": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    });
    if (f.help) return (out(HELP), 0);
    if (positionals.length) throw new UsageError(`"graph" takes no arguments`);
    const format = f.format ?? "mermaid";
    if (format !== "mermaid" && format !== "dot") {
      throw new UsageError(`Invalid "--format": "${format}" is not "mermaid" or "dot"`);
    }
    const cfg = await loadStandaloneConfig(f.config);
    const networks = (await definitionFiles(cfg.conf.networksDir)).map((file) => {
      const { namespace, name } = definitionName(file);
      return `${namespace}/${name}`;
    });
    const cluster = typeof cfg.conf.clusterNetwork === "string"
      ? cfg.conf.clusterNetwork
      : undefined;
    const clusterName = cluster && !cluster.includes("/")
      ? `${cfg.conf.defaultNetworkNamespace}/${cluster}`
      : cluster;
    const overlay = f["no-nodes"] ? undefined : await overlayOf(f.network, f.config, clusterName);
    out(renderGraph(await listPods(root, cfg, false), networks, format, overlay));
    return 0;
  });
}
