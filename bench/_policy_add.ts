/**
 * What a policy in force costs a pod's ADD: the built `bin/podplex` exec'd per call as a
 * runtime does (bridge + host-local on a bridge `ppe-bbr0`, 10.225.200.0/24), for a pod
 * labelled app=web, with a policiesDir that does not exist against one holding two YAML
 * NetworkPolicies that select it (so its table is rendered and applied through libnftables
 * inside the ADD, and its peers re-rendered after). Five more pods are up (clients), so the
 * world is not empty. Rounds alternate the two modes; each round's netns is fresh.
 *
 * Reported: the wall of the ADD process (spawn to exit) and podplex's own marks
 * (PODPLEX_TRACE=1): the policy step (last attachment → `policy`) and the peers' update
 * after the state is saved (`state` → `policy-peers`).
 *
 * @module
 */
import { lanConf, writeLan } from "../tests/_policy_world.ts";
import { BUILTINS } from "../delegates/catalog.ts";
import { createRegistry } from "../delegates/runner/registry.ts";
import { createMetaPlugin } from "../meta/plugin.ts";

const BIN = new URL("../bin/podplex", import.meta.url).pathname;
const BRIDGE = "ppe-bbr0";
const ANN = "io.kubernetes.cri.pod-annotations";
const dec = new TextDecoder();

const POLICIES = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-web}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-client}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 80, protocol: TCP}]
`;

const POLICIES_JSON = {
  kind: "List",
  items: [
    {
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "deny-web" },
      spec: { podSelector: { matchLabels: { app: "web" } }, policyTypes: ["Ingress"] },
    },
    {
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "allow-client" },
      spec: {
        podSelector: { matchLabels: { app: "web" } },
        ingress: [{
          from: [{ podSelector: { matchLabels: { app: "client" } } }],
          ports: [{ port: 80, protocol: "TCP" }],
        }],
      },
    },
  ],
};

async function sh(...args: string[]) {
  const o = await new Deno.Command(args[0], { args: args.slice(1), stderr: "piped" }).output();
  if (!o.success) throw new Error(`${args.join(" ")}: ${dec.decode(o.stderr)}`);
}

interface Run {
  wall: number;
  step: number;
  peers: number;
}

/** One CNI call of bin/podplex; the ADD's wall and trace phases. */
async function cni(
  verb: "ADD" | "DEL",
  conf: Record<string, unknown>,
  id: string,
  netns: string,
  labels: string,
): Promise<Run> {
  const env = {
    CNI_COMMAND: verb,
    CNI_CONTAINERID: id,
    CNI_NETNS: netns,
    CNI_IFNAME: "eth0",
    CNI_PATH: "/usr/lib/cni",
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${id}`,
    PODPLEX_TRACE: "1",
  };
  const stdin = JSON.stringify({
    ...conf,
    runtimeConfig: { [ANN]: { "podplex.io/labels": labels } },
  });
  const t = performance.now();
  const c = new Deno.Command(BIN, { env, stdin: "piped", stdout: "piped", stderr: "piped" })
    .spawn();
  const w = c.stdin.getWriter();
  await w.write(new TextEncoder().encode(stdin));
  await w.close();
  const o = await c.output();
  const wall = performance.now() - t;
  const err = dec.decode(o.stderr);
  if (!o.success) throw new Error(`${verb} ${id}: ${dec.decode(o.stdout)} ${err}`);
  const line = err.split("\n").find((l) => l.startsWith("PODPLEX_TRACE "));
  const marks = new Map<string, number>();
  const list = line ? JSON.parse(line.slice(14)).marks as [string, number][] : [];
  let beforePolicy = NaN;
  for (const [i, [name, at]] of list.entries()) {
    marks.set(name, at);
    if (name === "policy") beforePolicy = list[i - 1][1];
  }
  return {
    wall,
    step: (marks.get("policy") ?? NaN) - beforePolicy,
    peers: (marks.get("policy-peers") ?? NaN) - (marks.get("state") ?? NaN),
  };
}

/**
 * The same ADD in one resident process, as `podplex serve` runs it (libnftables and the
 * delegates loaded once): the wall of the meta-plugin's ADD, warm.
 */
async function inProcess(
  conf: Record<string, unknown>,
  id: string,
  netns: string,
  off: unknown,
): Promise<number> {
  const plugin = inProcessPlugin ??= createMetaPlugin({
    registry: () => createRegistry({ builtins: BUILTINS }),
  });
  const env = {
    containerId: id,
    netns,
    ifname: "eth0",
    path: ["/usr/lib/cni"],
    args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${id}`,
  };
  const bytes = (c: Record<string, unknown>) =>
    new TextEncoder().encode(JSON.stringify({
      ...c,
      runtimeConfig: { [ANN]: { "podplex.io/labels": "app=web" } },
    }));
  const t = performance.now();
  await plugin.invoke({ command: "ADD", conf: bytes(conf), env });
  const wall = performance.now() - t;
  // A figure "with" a policy must have had one in force (a YAML file that did not parse, a
  // label lost, would make it a second "without").
  const tables = await new Deno.Command("ip", {
    args: ["netns", "exec", netns.replace("/run/netns/", ""), "nft", "list", "tables"],
    stdout: "piped",
  }).output();
  if (conf.policiesDir !== off && !dec.decode(tables.stdout).includes("inet podplex")) {
    throw new Error(`The resident ADD with ${conf.policiesDir} left no table in ${netns}`);
  }
  await plugin.invoke({ command: "DEL", conf: bytes(conf), env });
  return wall;
}
let inProcessPlugin: ReturnType<typeof createMetaPlugin> | undefined;

function p50(xs: number[]): number {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

/** Runs the comparison and prints it; needs root and a built bin/podplex. */
export async function addOverhead(rounds: number): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ppe-bench" });
  await Deno.mkdir(`${dir}/policies.d/default`, { recursive: true });
  await Deno.writeTextFile(`${dir}/policies.d/default/web.yaml`, POLICIES);
  await Deno.mkdir(`${dir}/json.d/default`, { recursive: true });
  await Deno.writeTextFile(`${dir}/json.d/default/web.json`, JSON.stringify(POLICIES_JSON));
  await writeLan(dir, BRIDGE, "10.225.200.0/24");
  const on = lanConf(dir, `${dir}/policies.d`);
  const off = lanConf(dir, `${dir}/none`);
  const json = lanConf(dir, `${dir}/json.d`);
  const clients = Array.from({ length: 5 }, (_, i) => `ppe-bc${i}`);
  const runs = { on: [] as Run[], off: [] as Run[], json: [] as Run[] };
  const resident = { on: [] as number[], off: [] as number[] };
  try {
    for (const c of clients) {
      await sh("ip", "netns", "add", c);
      await cni("ADD", on, c, `/run/netns/${c}`, "app=client");
    }
    for (let i = 0; i < rounds * 3; i++) {
      const mode = (["off", "on", "json"] as const)[i % 3];
      const ns = "ppe-bw";
      await sh("ip", "netns", "add", ns);
      try {
        const conf = { on, off, json }[mode];
        runs[mode].push(await cni("ADD", conf, `ppe-bw${i}`, `/run/netns/${ns}`, "app=web"));
        await cni("DEL", conf, `ppe-bw${i}`, `/run/netns/${ns}`, "app=web");
      } finally {
        await sh("ip", "netns", "del", ns);
      }
    }
    // Resident: the first ADD of each mode warms up (delegates, libnftables loaded).
    for (let i = 0; i < rounds * 2 + 2; i++) {
      const mode = i % 2 ? "on" : "off";
      await sh("ip", "netns", "add", "ppe-bw");
      try {
        const conf = mode === "on" ? on : off;
        const wall = await inProcess(conf, `ppe-br${i}`, "/run/netns/ppe-bw", off.policiesDir);
        if (i >= 2) resident[mode].push(wall);
      } finally {
        await sh("ip", "netns", "del", "ppe-bw");
      }
    }
  } finally {
    for (const c of clients) {
      await cni("DEL", on, c, `/run/netns/${c}`, "app=client").catch(() => {});
      await sh("ip", "netns", "del", c).catch(() => {});
    }
    await sh("ip", "link", "del", BRIDGE).catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  const f = (x: number) => x.toFixed(2);
  const row = (name: string, r: Run[]) =>
    `  ${name}: wall ${f(p50(r.map((x) => x.wall)))}, policy step ${
      f(p50(r.map((x) => x.step)))
    }, peers after ${f(p50(r.map((x) => x.peers)))}`;
  const own = p50(runs.on.map((x) => x.step + x.peers)) -
    p50(runs.off.map((x) => x.step + x.peers));
  const wall = p50(runs.on.map((x) => x.wall)) - p50(runs.off.map((x) => x.wall));
  console.log(
    `ADD with a policy in force vs without (bin/podplex per call, bridge + host-local, ` +
      `${rounds} rounds each, interleaved), p50 ms:`,
  );
  console.log(row("without (no policiesDir)", runs.off));
  console.log(row("with (2 policies select it, YAML)", runs.on));
  console.log(row("with (the same as JSON)", runs.json));
  console.log(
    `  per-call overhead: ${f(own)} in podplex's own marks, ${f(wall)} in the wall ` +
      `(noisier): most of it is loading libnftables (dlopen) and its first transaction`,
  );
  const res = p50(resident.on) - p50(resident.off);
  console.log(
    `  resident (podplex serve's path, warm, in-process): ADD ${f(p50(resident.off))} ` +
      `without, ${f(p50(resident.on))} with: overhead ${f(res)} ms, target <= 3 ms: ` +
      `${res <= 3 ? "met" : "NOT met"}`,
  );
}
