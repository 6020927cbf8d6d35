/**
 * deploy/daemonset.yaml (thick, the default install) agrees with the code: its install
 * container is the one of deploy/thin/daemonset.yaml, its daemon runs `podplex serve` with flags serve knows, and mounts
 * what `--thick` assumes (serve/view.ts THICK_DEFAULTS) from the host at the same paths, with
 * /run/netns propagated, hostPID and hostNetwork on, the readiness probe the launcher answers.
 * Each check is shown to fail on a manifest that disagrees.
 */
import { deepStrictEqual as assertEquals, match } from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { parseServeArgs } from "../cli/serve/args.ts";
import { PROTOCOL } from "../cli/serve/protocol.ts";
import { THICK_DEFAULTS } from "../cli/serve/view.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

async function daemonSet(file: string): Promise<Obj> {
  const docs = parseAllDocuments(await Deno.readTextFile(`${ROOT}/${file}`));
  const ds = docs.map((d) => d.toJS() as Obj).find((o) => o?.kind === "DaemonSet");
  if (!ds) throw new Error(`${file} has no DaemonSet`);
  return ds;
}

/** Where the thick DaemonSet and the code disagree, one sentence each. */
function problems(thick: Obj, thin: Obj): string[] {
  const bad: string[] = [];
  const pod = thick.spec.template.spec;
  const byName = (p: Obj, n: string) => (p.containers as Obj[]).find((c) => c.name === n);
  const install = byName(pod, "install");
  if (JSON.stringify(install) !== JSON.stringify(byName(thin.spec.template.spec, "install"))) {
    bad.push("the install container differs from deploy/thin/daemonset.yaml's");
  }
  if (pod.hostNetwork !== true) bad.push("not on the host network");
  if (pod.hostPID !== true) bad.push("no hostPID (the host's /proc and pid 1's mount namespace)");
  const d = byName(pod, "daemon");
  if (!d) return [...bad, "no container named daemon"];
  if (JSON.stringify(d.command) !== JSON.stringify(["/podplex/podplex", "serve"])) {
    bad.push(`the daemon's command ${JSON.stringify(d.command)} is not podplex serve`);
  }
  // The pod's env gives NODE_NAME (checked below): what serve then reads.
  const hasNode = (d.env ?? []).some((e: Obj) => e.name === "NODE_NAME");
  const args = parseServeArgs(d.args ?? [], hasNode ? { NODE_NAME: "node-1" } : {});
  if ("error" in args) bad.push(`serve refuses the daemon's args: ${args.error}`);
  else if ("help" in args) bad.push("the daemon's args ask for help");
  else {
    if (JSON.stringify(args.view) !== JSON.stringify(THICK_DEFAULTS)) {
      bad.push(`the daemon is not in thick mode as --thick means it: ${JSON.stringify(args.view)}`);
    }
    if (args.socket !== PROTOCOL.defaultSocket) {
      bad.push(`the daemon listens on "${args.socket}", the shim connects to the default`);
    }
    if (!args.dynamicNetworks) bad.push("the daemon runs without --dynamic-networks (hot-plug)");
    for (const dir of args.stateDirs) {
      if (!args.view?.paths.some((p) => dir === p || dir.startsWith(`${p}/`))) {
        bad.push(`the hot-plug's state dir "${dir}" is not a host path the daemon shares`);
      }
    }
  }
  const volumes = new Map<string, Obj>((pod.volumes as Obj[]).map((v) => [v.name, v]));
  const mounts = (d.volumeMounts ?? []) as Obj[];
  const hostOf = (m: Obj) => volumes.get(m.name)?.hostPath?.path as string | undefined;
  // /var/run is /run in the image (Debian): /var/run/netns is the /run/netns mount.
  for (const path of THICK_DEFAULTS.paths.filter((p) => p !== "/var/run/netns")) {
    const m = mounts.find((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`));
    if (!m) bad.push(`the daemon does not mount "${path}"`);
    else if (hostOf(m) !== m.mountPath) {
      bad.push(`"${m.mountPath}" is mounted from host "${hostOf(m)}", not the same path`);
    }
  }
  const netns = mounts.find((m) => m.mountPath === "/run/netns");
  if (netns && netns.mountPropagation !== "HostToContainer") {
    bad.push("/run/netns is mounted without HostToContainer propagation");
  }
  const probe = JSON.stringify(d.readinessProbe?.exec?.command);
  if (probe !== JSON.stringify(["/podplex/podplex", "--ready"])) {
    bad.push(`the readiness probe ${probe} is not the launcher's --ready`);
  }
  if (d.securityContext?.privileged !== true) bad.push("the daemon is not privileged");
  const node = (d.env ?? []).find((e: Obj) => e.name === "NODE_NAME");
  if (node?.valueFrom?.fieldRef?.fieldPath !== "spec.nodeName") {
    bad.push("NODE_NAME is not the pod's spec.nodeName (the watch of this node's pods)");
  }
  if (!d.resources?.limits?.memory) bad.push("the daemon has no memory limit");
  return bad;
}

const thin = await daemonSet("deploy/thin/daemonset.yaml");
const thick = await daemonSet("deploy/daemonset.yaml");

Deno.test("deploy/daemonset.yaml (thick) agrees with serve's --thick, the launcher and deploy/thin", () => {
  assertEquals(problems(thick, thin), []);
});

Deno.test("the thick drift check fails on each kind of disagreement", () => {
  const daemon = (m: Obj) => m.spec.template.spec.containers.find((c: Obj) => c.name === "daemon");
  const cases: [string, (m: Obj) => void, RegExp][] = [
    ["no hostPID", (m) => delete m.spec.template.spec.hostPID, /no hostPID/],
    ["an unknown flag", (m) => daemon(m).args.push("--bogus"), /Unknown argument "--bogus"/],
    ["thin mode", (m) => daemon(m).args = [], /not in thick mode/],
    ["another socket", (m) => daemon(m).args.push("--socket=/x.sock"), /listens on "\/x.sock"/],
    ["no hot-plug", (m) => {
      daemon(m).args = daemon(m).args.filter((a: string) => a !== "--dynamic-networks");
    }, /without --dynamic-networks/],
    ["a hot-plug state dir the host does not share", (m) => {
      daemon(m).args.push("--state-dir=/var/lib/podplex");
    }, /state dir "\/var\/lib\/podplex" is not a host path/],
    ["a state dir not mounted", (m) => {
      daemon(m).volumeMounts = daemon(m).volumeMounts.filter((v: Obj) =>
        v.mountPath !== "/var/lib/cni"
      );
    }, /does not mount "\/var\/lib\/cni"/],
    ["a bin dir mounted elsewhere", (m) => {
      daemon(m).volumeMounts.find((v: Obj) => v.mountPath === "/opt/cni/bin").mountPath = "/b";
    }, /does not mount "\/opt\/cni\/bin"/],
    ["netns without propagation", (m) => {
      delete daemon(m).volumeMounts.find((v: Obj) => v.mountPath === "/run/netns")
        .mountPropagation;
    }, /without HostToContainer/],
    ["another probe", (m) => daemon(m).readinessProbe.exec.command = ["true"], /readiness probe/],
    ["install drifted", (m) => m.spec.template.spec.containers[0].args.pop(), /install container/],
    ["no node name", (m) => delete daemon(m).env, /NODE_NAME/],
  ];
  for (const [what, edit, want] of cases) {
    const m = structuredClone(thick);
    edit(m);
    match(problems(m, thin).join("; "), want, what);
  }
});
