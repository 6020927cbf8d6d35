/**
 * The text `podplex policy show` and `policy check` print.
 *
 * @module
 */
import type { CheckResult } from "../meta/policy/check.ts";
import type { LocalPod } from "../meta/policy/local.ts";
import type { Allow, DirectionRules, PodRules, PortMatch } from "../meta/policy/resolve.ts";
import { formatLabels } from "../meta/policy/source.ts";
import type { PodView, PolicyIssue, Protocol } from "../meta/policy/types.ts";

function ports(ps: PortMatch[] | undefined): string {
  if (!ps) return "any port";
  return ps.map((p) =>
    p.port === undefined
      ? `any ${p.protocol} port`
      : `${p.port}${
        p.endPort !== undefined && p.endPort > p.port ? `-${p.endPort}` : ""
      }/${p.protocol}`
  ).join(", ");
}

function peer(a: Allow): string {
  const p = a.peer;
  if (p.kind === "any") return "anyone";
  if (p.kind === "cidr") {
    return `${p.cidr}${p.except.length ? ` except ${p.except.join(", ")}` : ""}`;
  }
  return `${p.ips.length ? p.ips.join(", ") : "no pod"} (${p.why})`;
}

function direction(name: "ingress" | "egress", d: DirectionRules | undefined): string[] {
  if (!d) return [`    ${name}: not isolated (everything passes)`];
  const word = name === "ingress" ? "from" : "to";
  const lines = [`    ${name}: isolated by ${d.isolatedBy.join(", ")}`];
  if (!d.allows.length) lines.push(`      nothing allowed`);
  for (const a of d.allows) {
    lines.push(`      allow ${word} ${peer(a)} on ${ports(a.ports)}  [${a.policy} ${a.rule}]`);
  }
  for (const u of d.unresolved) {
    lines.push(`      dropped: ${u}: no container of the pod has this named port`);
  }
  return lines;
}

/**
 * `policy show`'s text: the pod, then per interface its ingress and egress rules, then the
 * dropped rules of its namespace's policies.
 */
export function showText(pod: LocalPod, rules: PodRules, dropped: PolicyIssue[]): string {
  const v = pod.view;
  const labels = formatLabels(v.labels) || "none";
  const lines = [`pod ${v.namespace}/${v.name} (labels: ${labels}; netns ${pod.netns})`];
  if (!rules.interfaces.length) lines.push("  no interface");
  for (const i of rules.interfaces) {
    const net = i.cluster ? `cluster network ${i.network}` : i.network;
    lines.push(`  ${i.ifname} (${net}; ${i.ips.join(", ") || "no address"})`);
    if (i.cluster && i.nodeIps.length && i.ingress) {
      lines.push(`    the node (${i.nodeIps.join(", ")}) always reaches it`);
    }
    lines.push(...direction("ingress", i.ingress), ...direction("egress", i.egress));
  }
  if (dropped.length) {
    lines.push("dropped (cannot be applied; the rest of each policy is enforced):");
    for (const d of dropped) lines.push(`  ${d.policy}: ${d.field ? `${d.field}: ` : ""}${d.msg}`);
  }
  return lines.join("\n") + "\n";
}

/** `policy check`'s text: the verdict, then what each end's direction said. */
export function checkText(
  src: PodView,
  dst: PodView,
  port: number,
  protocol: Protocol,
  r: CheckResult,
): string {
  const s = `${src.namespace}/${src.name}`;
  const d = `${dst.namespace}/${dst.name}`;
  return `${r.allowed ? "allowed" : "denied"}: ${s} (${r.srcIp}) -> ${d} (${r.dstIp}) ` +
    `${port}/${protocol} on ${r.network === "cluster" ? "the cluster network" : r.network}\n` +
    `  egress of ${s}: ${r.egress.allowed ? "passes" : "denied"}: ${r.egress.reason}\n` +
    `  ingress of ${d}: ${r.ingress.allowed ? "passes" : "denied"}: ${r.ingress.reason}\n`;
}
