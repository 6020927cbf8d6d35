/**
 * `podplex pod up|down|check|list|exec`: pods without Kubernetes. A pod is a netns plus the
 * attachments the meta-plugin makes in it, brought up through the very path a runtime's CNI
 * ADD takes (the podplex conflist run by the chain runner, podplex itself through `runCni`).
 *
 * @module
 */
import { POD_ANNOTATIONS_ARG } from "../meta/context.ts";
import { CniError, Code } from "../conf/errors.ts";
import { convertResult, toCanonical } from "../conf/result.ts";
import type { PluginEnv } from "../delegates/types.ts";
import { NETWORKS_ANNOTATION } from "../meta/annotations.ts";
import { formatLabels, parseLabels, POD_LABELS_ANNOTATION } from "../meta/policy/source.ts";
import { createStateStore } from "../meta/state.ts";
import { podTable, type PodView } from "./_pod_view.ts";
import { interfacesOf } from "./_pod_view.ts";
import { checkPodName, cniArgsFor, containerIdFor, type PodRecord, podRecords } from "./_pods.ts";
import { listPods } from "./_pod_list.ts";
import { podExec } from "./_pod_exec.ts";
import { type Manifest, readManifest } from "./_pod_manifest.ts";
import {
  cniPath,
  CONFIG_HELP,
  loadStandaloneConfig,
  pathExists,
  type StandaloneConfig,
} from "./_config.ts";
import { err, out, printJson } from "./_output.ts";
import { guard, parseFlags, subcommandHelp, UsageError } from "./_args.ts";
import { runVerb } from "./_local_runtime.ts";
import type { Root } from "./root.ts";
import { hotplugCmd, withPodLock } from "./_pod_hotplug.ts";

/** The runtimeConfig key containerd passes the pod's annotations under. */
const IFNAME = "eth0";
const DEFAULT_NAMESPACE = "default";

const HELP = `usage: podplex pod <command> [flags]

  up NAME      create the netns NAME (or use --netns) and ADD the pod's networks
    --namespace NS         the pod's namespace (default "default", or the manifest's)
    --networks LIST        networks to add, as the k8s.v1.cni.cncf.io/networks annotation
                           ("a,ns/b@net2" or its JSON form)
    --labels K=V[,K=V]     the pod's labels, as network policy selects pods (default:
                           the manifest's metadata.labels); they reach podplex in the
                           annotation "podplex.io/labels"
    --annotations FILE     a pod manifest (YAML or JSON): metadata.annotations, and
                           metadata.namespace/name/labels when not given
    --netns PATH           use this existing netns instead of creating /run/netns/NAME
    --json                 print the pod as JSON
  attach NAME --networks LIST   plug the listed networks into the running pod (as a
               change of its networks annotation: new elements get the lowest free netN)
  detach NAME --networks LIST   unplug them ("ns/name@ifname"; the interface may be left
               out when the pod has that network once); the cluster network stays
  down NAME    DEL the pod's networks, then remove the netns if 'pod up' created it
  check NAME   CHECK the pod's networks (exit 1 when something is missing or wrong)
  list         every pod in the state dir: interfaces, IPs, networks, health (--json)
  exec NAME -- CMD...   run CMD inside the pod's netns (through 'ip netns exec', or
                        'nsenter --net' for a --netns path)

Flags for every command:
${CONFIG_HELP}
  --namespace NS     the pod's namespace (default "default")
  --json             JSON output (up, list)

The pod's annotations reach podplex as containerd sends them (runtimeConfig
"${POD_ANNOTATIONS_ARG}"); CNI_CONTAINERID is podplex-<namespace>-<name>,
CNI_IFNAME eth0, CNI_PATH from the environment or /opt/cni/bin:/usr/lib/cni.
`;

const FLAGS = {
  config: { type: "string" },
  namespace: { type: "string", short: "n" },
  networks: { type: "string" },
  labels: { type: "string" },
  annotations: { type: "string" },
  netns: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** Entry of `podplex pod`. */
export function main(argv: string[], root: Root): Promise<number> {
  return guard("podplex pod", async () => {
    const [cmd, ...rest] = argv;
    const helped = subcommandHelp(cmd, HELP);
    if (helped !== undefined) return helped;
    if (cmd === "exec") return await execCmd(rest);
    const { values: f, positionals } = parseFlags(rest, FLAGS);
    if (f.help) return (out(HELP), 0);
    const allowed: Record<string, (keyof typeof f)[]> = {
      up: ["config", "namespace", "networks", "labels", "annotations", "netns", "json"],
      attach: ["config", "namespace", "networks", "json"],
      detach: ["config", "namespace", "networks", "json"],
      down: ["config", "namespace"],
      check: ["config", "namespace"],
      list: ["config", "json"],
    };
    if (!allowed[cmd]) throw new UsageError(`Unknown pod command "${cmd}"`);
    for (const k of Object.keys(f) as (keyof typeof f)[]) {
      if (!allowed[cmd].includes(k)) {
        throw new UsageError(`Flag "--${k}" does not apply to "${cmd}"`);
      }
    }
    const cfg = await loadStandaloneConfig(f.config);
    if (cmd === "list") return await listCmd(root, cfg, positionals, !!f.json);
    if (cmd === "up") return await up(root, cfg, positionals, f);
    const name = onePositional(positionals, cmd);
    const namespace = checkPodName("namespace", f.namespace ?? DEFAULT_NAMESPACE);
    const containerId = containerIdFor(namespace, name);
    return await withPodLock(cfg, containerId, async () => {
      const rec = await requireRecord(cfg, namespace, name);
      if (cmd === "attach" || cmd === "detach") {
        return await hotplugCmd(root, cfg, rec, cmd, f, viewOf);
      }
      return cmd === "down" ? await down(root, cfg, rec) : await check(root, cfg, rec);
    });
  });
}

function onePositional(positionals: string[], cmd: string): string {
  if (positionals.length !== 1) {
    throw new UsageError(`"pod ${cmd}" takes exactly one pod name, got ${positionals.length}`);
  }
  return checkPodName("pod name", positionals[0]);
}

async function requireRecord(cfg: StandaloneConfig, ns: string, name: string): Promise<PodRecord> {
  const records = podRecords(cfg.conf.stateDir);
  const rec = await records.load(containerIdFor(ns, name));
  if (!rec) {
    throw new CniError(
      Code.UnknownContainer,
      `Pod "${ns}/${name}" is not up: no record in "${records.dir}" (conf ${cfg.source})`,
    );
  }
  return rec;
}

interface UpFlags {
  namespace?: string;
  networks?: string;
  labels?: string;
  annotations?: string;
  netns?: string;
  json?: boolean;
}

/** The pod's annotations must reach podplex: its conf must declare the capability. */
function requireAnnotationsCapability(cfg: StandaloneConfig, annotations: Record<string, string>) {
  if (!Object.keys(annotations).length) return;
  if (cfg.list.plugins[0].conf.capabilities?.[POD_ANNOTATIONS_ARG] === true) return;
  throw new CniError(
    Code.InvalidConfig,
    `The podplex conf ${cfg.source} does not declare the capability "${POD_ANNOTATIONS_ARG}", ` +
      `so the pod's annotations (and --networks) cannot reach it`,
  );
}

async function up(
  root: Root,
  cfg: StandaloneConfig,
  positionals: string[],
  f: UpFlags,
): Promise<number> {
  const manifest = f.annotations
    ? await readManifest(f.annotations)
    : { annotations: {} } as Manifest;
  if (positionals.length > 1) {
    throw new UsageError(`"pod up" takes one pod name, got ${positionals.length}`);
  }
  const rawName = positionals[0] ?? manifest.name;
  if (!rawName) {
    throw new UsageError(`"pod up" needs a pod name (or a manifest with metadata.name)`);
  }
  const name = checkPodName("pod name", rawName);
  const namespace = checkPodName(
    "namespace",
    f.namespace ?? manifest.namespace ?? DEFAULT_NAMESPACE,
  );
  const annotations = { ...manifest.annotations };
  if (f.networks !== undefined) annotations[NETWORKS_ANNOTATION] = f.networks;
  const labels = f.labels !== undefined
    ? parseLabels(f.labels, "--labels")
    : manifest.labels && parseLabels(formatLabels(manifest.labels), `"${f.annotations}"`);
  if (labels && Object.keys(labels).length) {
    annotations[POD_LABELS_ANNOTATION] = formatLabels(labels);
  }
  requireAnnotationsCapability(cfg, annotations);

  const containerId = containerIdFor(namespace, name);
  const records = podRecords(cfg.conf.stateDir);
  if (await records.load(containerId)) {
    throw new CniError(
      Code.AlreadyExists,
      `Pod "${namespace}/${name}" is already up; 'pod down' it first`,
    );
  }
  const netns = f.netns ?? `/run/netns/${name}`;
  const ownsNetns = f.netns === undefined;
  // Two pods in one netns would DEL each other's interfaces (eth0 is eth0 in both).
  const sharer = (await records.list()).find((r) => r.netns === netns);
  if (sharer) {
    throw new CniError(
      Code.AlreadyExists,
      `The netns "${netns}" belongs to pod "${sharer.namespace}/${sharer.name}"; give this pod another name or --netns`,
    );
  }
  if (ownsNetns) await createNetns(name);
  else if (!(await pathExists(netns))) {
    throw new CniError(Code.InvalidEnv, `The netns "${netns}" given with --netns does not exist`);
  }
  const rec: PodRecord = {
    version: 1,
    name,
    namespace,
    containerId,
    netns,
    ownsNetns,
    ifname: IFNAME,
    cniArgs: cniArgsFor(namespace, name),
    capabilityArgs: { [POD_ANNOTATIONS_ARG]: annotations },
    result: {},
    createdAt: new Date().toISOString(),
  };
  try {
    const { result } = await runVerb(root, cfg, "ADD", {
      env: envOf(rec),
      capabilityArgs: rec.capabilityArgs,
    });
    rec.result = result ? convertResult(result, cfg.list.cniVersion) : {};
    await records.save(rec);
  } catch (e) {
    await undoUp(root, cfg, rec);
    throw e;
  }
  const view = await viewOf(cfg, rec);
  if (f.json) printJson(view);
  else out(podTable([view], false));
  return 0;
}

/** After a failed ADD: DEL (as runtimes do after a failed ADD) and remove what was made. */
async function undoUp(root: Root, cfg: StandaloneConfig, rec: PodRecord): Promise<void> {
  try {
    await runVerb(root, cfg, "DEL", { env: envOf(rec), capabilityArgs: rec.capabilityArgs });
  } catch (e) {
    err(`podplex pod: cleanup DEL after the failed ADD: ${(e as Error).message}\n`);
  }
  await podRecords(cfg.conf.stateDir).remove(rec.containerId).catch(() => {});
  if (rec.ownsNetns) await removeNetns(rec.name);
}

/** The CNI environment of the pod. */
export function envOf(rec: PodRecord): PluginEnv {
  return {
    containerId: rec.containerId,
    netns: rec.netns,
    ifname: rec.ifname,
    args: rec.cniArgs,
    path: cniPath(),
  };
}

async function createNetns(name: string): Promise<void> {
  const { NetNs, Netlink, NetlinkError } = await import("../ffi/mod.ts");
  try {
    using ns = NetNs.create(name);
    using nl = Netlink.open(ns);
    nl.setUp("lo"); // a pod's loopback is up, as the runtime's loopback plugin makes it
  } catch (e) {
    if (e instanceof NetlinkError && e.kind === "exists") {
      throw new CniError(
        Code.AlreadyExists,
        `The netns "/run/netns/${name}" exists already (not made by 'pod up'); pass --netns /run/netns/${name} to use it`,
      );
    }
    await removeNetns(name);
    throw CniError.wrap(e, Code.KernelFailure, `Cannot create the netns "${name}"`);
  }
}

async function removeNetns(name: string): Promise<void> {
  const { NetNs } = await import("../ffi/mod.ts");
  try {
    NetNs.remove(name);
  } catch (e) {
    err(`podplex pod: cannot remove the netns "${name}": ${(e as Error).message}\n`);
  }
}

async function viewOf(cfg: StandaloneConfig, rec: PodRecord): Promise<PodView> {
  const state = await createStateStore(cfg.conf.stateDir).load(rec.containerId, rec.ifname);
  return {
    name: rec.name,
    namespace: rec.namespace,
    containerId: rec.containerId,
    netns: rec.netns,
    interfaces: interfacesOf(state, rec.result),
    standalone: true,
  };
}

/** Runs DEL or CHECK for an up pod, with its ADD result as the cached result. */
async function runForRecord(
  root: Root,
  cfg: StandaloneConfig,
  rec: PodRecord,
  verb: "DEL" | "CHECK",
) {
  await runVerb(root, cfg, verb, {
    env: envOf(rec),
    capabilityArgs: rec.capabilityArgs,
    cachedResult: toCanonical(rec.result, cfg.list.cniVersion),
  });
}

async function down(root: Root, cfg: StandaloneConfig, rec: PodRecord): Promise<number> {
  await runForRecord(root, cfg, rec, "DEL");
  if (rec.ownsNetns) await removeNetns(rec.name);
  await podRecords(cfg.conf.stateDir).remove(rec.containerId);
  out(`pod "${rec.namespace}/${rec.name}" is down\n`);
  return 0;
}

async function check(root: Root, cfg: StandaloneConfig, rec: PodRecord): Promise<number> {
  await runForRecord(root, cfg, rec, "CHECK");
  out(`pod "${rec.namespace}/${rec.name}" is ok\n`);
  return 0;
}

async function listCmd(
  root: Root,
  cfg: StandaloneConfig,
  positionals: string[],
  json: boolean,
): Promise<number> {
  if (positionals.length) throw new UsageError(`"pod list" takes no arguments`);
  const pods = await listPods(root, cfg);
  if (json) printJson(pods);
  else out(podTable(pods, true));
  return 0;
}

async function execCmd(argv: string[]): Promise<number> {
  const dash = argv.indexOf("--");
  const own = dash < 0 ? argv : argv.slice(0, dash);
  // `--help` before any "--" is for podplex; after it, for the command run in the pod.
  if (own.includes("--help") || own.includes("-h")) return (out(HELP), 0);
  if (dash < 0) throw new UsageError(`"pod exec" needs "--" before the command`);
  const { values: f, positionals } = parseFlags(own, {
    config: FLAGS.config,
    namespace: FLAGS.namespace,
  });
  const cmd = argv.slice(dash + 1);
  if (!cmd.length) throw new UsageError(`"pod exec" needs a command after "--"`);
  const name = onePositional(positionals, "exec");
  const cfg = await loadStandaloneConfig(f.config);
  const rec = await requireRecord(
    cfg,
    checkPodName("namespace", f.namespace ?? DEFAULT_NAMESPACE),
    name,
  );
  return await podExec(rec.netns, cmd);
}
