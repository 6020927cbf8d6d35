/**
 * `podplex policy apply|show|check`: the network policy of the local pods (the policies in
 * the conf's policiesDir, the pods of its state dir), enforced in each pod's netns as one
 * nftables table, explained, and asked about.
 *
 * @module
 */
import { checkConnection } from "../meta/policy/check.ts";
import {
  loadLocalPolicies,
  type LocalPod,
  localPods,
  type LocalPolicies,
  localWorld,
  reapplyLocal,
} from "../meta/policy/local.ts";
import { resolvePod } from "../meta/policy/resolve.ts";
import type { PolicyIssue, PolicyWorld, Protocol } from "../meta/policy/types.ts";
import { createStateStore } from "../meta/state.ts";
import { CONFIG_HELP, loadStandaloneConfig, type StandaloneConfig } from "./_config.ts";
import { guard, parseFlags, subcommandHelp, UsageError } from "./_args.ts";
import { err, out, printJson } from "./_output.ts";
import { checkText, showText } from "./_policy_text.ts";
import type { Root } from "./root.ts";

const HELP = `usage: podplex policy <command> [flags]

  apply        re-render every local pod's table from the files in policiesDir (run it
               after they changed): a pod no policy selects any more loses its table
  show POD     the rules POD has, per interface and direction: which policies isolate it,
               what each rule allows (peers, ports) and which policy and rule it comes from;
               rules dropped because they cannot be applied, with the reason
  check SRC DST PORT/PROTO
               would a connection from pod SRC to pod DST on PORT/PROTO (TCP, UDP, SCTP)
               pass, and by what (SRC's egress, DST's ingress); e.g.
               'podplex policy check default/a default/b 80/TCP'
               exit 0 allowed, 1 denied, 2 usage (an unknown pod, a bad port)
    --network NS/NAME   judge it on that network (default: the cluster network)

A pod is NS/NAME, or NAME in --namespace (default "default"). Policies are
NetworkPolicy (networking.k8s.io/v1) and MultiNetworkPolicy (k8s.cni.cncf.io/v1beta1,
v1beta2) objects in <policiesDir>/<namespace>/*.{yaml,yml,json}, with Namespace objects
there giving a namespace its labels; policiesDir is a key of the podplex conf (default
/etc/cni/podplex/policies.d). A pod's labels come from 'pod up --labels'.

Flags for every command:
${CONFIG_HELP}
  --namespace NS     the namespace of a pod given without one (default "default")
  --json             JSON output
`;

const FLAGS = {
  config: { type: "string" },
  namespace: { type: "string", short: "n" },
  network: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** Entry of `podplex policy`. */
export function main(argv: string[], _root: Root): Promise<number> {
  return guard("podplex policy", async () => {
    const [cmd, ...rest] = argv;
    const helped = subcommandHelp(cmd, HELP);
    if (helped !== undefined) return helped;
    const { values: f, positionals } = parseFlags(rest, FLAGS);
    if (f.help) return (out(HELP), 0);
    if (!["apply", "show", "check"].includes(cmd)) {
      throw new UsageError(`Unknown policy command "${cmd}"`);
    }
    if (f.network !== undefined && cmd !== "check") {
      throw new UsageError(`Flag "--network" does not apply to "${cmd}"`);
    }
    const want = { apply: 0, show: 1, check: 3 }[cmd]!;
    if (positionals.length !== want) {
      throw new UsageError(`"policy ${cmd}" takes ${want} arguments, got ${positionals.length}`);
    }
    const cfg = await loadStandaloneConfig(f.config);
    const ctx = await load(cfg);
    const ns = f.namespace ?? "default";
    if (cmd === "apply") return await applyCmd(cfg, ctx, !!f.json);
    if (cmd === "show") return showCmd(ctx, findPod(ctx, positionals[0], ns), !!f.json);
    return checkCmd(ctx, positionals, ns, f.network, !!f.json);
  });
}

/** The local policies and pods. */
interface Local {
  dir: string;
  policies: LocalPolicies | undefined;
  pods: LocalPod[];
  world: PolicyWorld;
  states: Awaited<ReturnType<ReturnType<typeof createStateStore>["list"]>>;
}

async function load(cfg: StandaloneConfig): Promise<Local> {
  const dir = cfg.conf.policiesDir;
  const policies = await loadLocalPolicies(dir);
  const states = await createStateStore(cfg.conf.stateDir).list();
  const world = localWorld(
    policies ?? { policies: [], namespaceLabels: new Map(), issues: [] },
    states,
  );
  return { dir, policies, pods: localPods(states), world, states };
}

function findPod(ctx: Local, given: string, ns: string): LocalPod {
  const [namespace, name] = given.includes("/") ? given.split("/", 2) : [ns, given];
  const pod = ctx.pods.find((p) => p.view.namespace === namespace && p.view.name === name);
  if (!pod) {
    throw new UsageError(
      `No local pod "${namespace}/${name}" (pods: ${
        ctx.pods.map((p) => `${p.view.namespace}/${p.view.name}`).join(", ") || "none"
      })`,
    );
  }
  return pod;
}

function printIssues(issues: PolicyIssue[]) {
  for (const i of issues) {
    err(`podplex policy: ${i.policy}: ${i.field ? `${i.field} ` : ""}${i.msg} (dropped)\n`);
  }
}

async function applyCmd(cfg: StandaloneConfig, ctx: Local, json: boolean): Promise<number> {
  printIssues(ctx.policies?.issues ?? []);
  const done = await reapplyLocal(ctx.policies, ctx.states);
  if (json) printJson(done);
  else {
    const n = ctx.policies?.policies.length ?? 0;
    out(`${n} ${n === 1 ? "policy" : "policies"} in ${ctx.dir} (conf ${cfg.source})\n`);
    for (const d of done) {
      const what = d.error
        ? `failed: ${d.error}`
        : d.isolated.length
        ? `table applied (isolated: ${d.isolated.join(", ")})`
        : "no policy selects it: no table";
      out(`${d.pod}: ${what}\n`);
    }
  }
  return done.some((d) => d.error) ? 1 : 0;
}

function showCmd(ctx: Local, pod: LocalPod, json: boolean): number {
  const rules = resolvePod(ctx.world, pod.view);
  const ns = pod.view.namespace;
  const issues = (ctx.policies?.issues ?? []).filter((i) =>
    !/^(Network|MultiNetwork)Policy /.test(i.policy) ||
    i.policy.replace(/^\S+ /, "").startsWith(`${ns}/`)
  );
  if (json) printJson({ pod: pod.view, netns: pod.netns, rules, dropped: issues });
  else out(showText(pod, rules, issues));
  return 0;
}

function checkCmd(
  ctx: Local,
  args: string[],
  ns: string,
  network: string | undefined,
  json: boolean,
): number {
  const src = findPod(ctx, args[0], ns);
  const dst = findPod(ctx, args[1], ns);
  const m = /^(\d{1,5})\/(TCP|UDP|SCTP)$/i.exec(args[2]);
  const port = m ? Number(m[1]) : 0;
  if (!m || port < 1 || port > 65535) {
    throw new UsageError(`Invalid PORT/PROTO "${args[2]}": expected e.g. 80/TCP (TCP, UDP, SCTP)`);
  }
  const protocol = m[2].toUpperCase() as Protocol;
  const res = checkConnection(ctx.world, src.view, dst.view, port, protocol, network);
  if (typeof res === "string") throw new UsageError(res);
  if (json) printJson(res);
  else out(checkText(src.view, dst.view, port, protocol, res));
  return res.allowed ? 0 : 1;
}
