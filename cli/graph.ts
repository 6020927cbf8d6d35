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
per pod interface labelled with its name and IPs.

Flags:
  --format F         mermaid (default) or dot
${CONFIG_HELP}
`;

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
    lines.push("}");
  }
  return lines.join("\n") + "\n";
}

/** Entry of `podplex graph`. */
export function main(argv: string[], root: Root): Promise<number> {
  return guard("podplex graph", async () => {
    const { values: f, positionals } = parseFlags(argv, {
      config: { type: "string" },
      format: { type: "string" },
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
    out(renderGraph(await listPods(root, cfg, false), networks, format));
    return 0;
  });
}
