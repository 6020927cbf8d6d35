/**
 * Network policy in the kernel: the upstream e2e model (namespaces x, y, z × pods a, b, c)
 * on real netns, each pod with eth0 on a cluster bridge (10.172.0.0/24, the node at .1) and
 * net1 on a secondary bridge (10.173.0.0/24), a TCP/UDP listener on 80 and 81 in each. For
 * every case the pods' tables are rendered from the model and applied through libnftables,
 * then every source × destination × port/protocol is probed on both networks and compared
 * with the case's hand-written truth table (tests/_policy_cases.ts). Cases run in sequence
 * on the same pods, so each also proves the previous tables were replaced (or removed).
 *
 * A short list of cases runs by default; PODPLEX_LONG=1 runs all of them. SCTP is not
 * probed (Deno has no SCTP sockets); the model tests cover its rules.
 *
 * @module
 */
import assert from "node:assert/strict";
import { runNftIn } from "../ffi/mod.ts";
import { modelWorld, NAMESPACES, POD_NAMES } from "../meta/policy/_testing.ts";
import { renderPodTable } from "../meta/policy/render.ts";
import { resolvePod } from "../meta/policy/resolve.ts";
import type { Policy } from "../meta/policy/types.ts";
import { CASES, expected, type P, type PolicyCase } from "./_policy_cases.ts";
import { Agent } from "./_policy_probe.ts";

const LONG = Deno.env.get("PODPLEX_LONG") === "1";
const CLUSTER = "10.172.0.";
const SEC = "10.173.0.";
const NODE_NS = "ppe-node";
const PODS: P[] = NAMESPACES.flatMap((ns) => POD_NAMES.map((pod) => ({ ns, pod })));
const nsName = (p: P) => `ppe-${p.ns}-${p.pod}`;
const idx = (p: P) => PODS.indexOf(p);

const SHORT = [
  "default-deny ingress in x",
  "default-deny egress in x",
  "(AND form)",
  "(OR form)",
  "ipBlock 10.164.0.0/24 except y/b",
  "named port serve-80-tcp",
  "TCP range 80-81 (endPort)",
  "y/c becomes pod=b",
  "MultiNetworkPolicy egress deny on the secondary network and NetworkPolicy",
  "no policy: everything passes",
];

async function sh(...args: string[]): Promise<void> {
  const o = await new Deno.Command(args[0], { args: args.slice(1), stderr: "piped" }).output();
  if (!o.success) throw new Error(`${args.join(" ")}: ${new TextDecoder().decode(o.stderr)}`);
}

async function cleanup() {
  for (const n of [NODE_NS, ...PODS.map(nsName)]) {
    await sh("ip", "netns", "del", n).catch(() => {});
  }
}

async function topology() {
  await cleanup();
  await sh("ip", "netns", "add", NODE_NS);
  const node = ["ip", "-n", NODE_NS];
  await sh(...node, "link", "set", "lo", "up");
  for (const [br, base] of [["ppe-br0", CLUSTER], ["ppe-br1", SEC]]) {
    await sh(...node, "link", "add", br, "type", "bridge");
    await sh(...node, "addr", "add", `${base}1/24`, "dev", br);
    await sh(...node, "link", "set", br, "up");
  }
  for (const p of PODS) {
    const n = nsName(p);
    await sh("ip", "netns", "add", n);
    await sh("ip", "-n", n, "link", "set", "lo", "up");
    for (
      const [ifname, peer, br, base] of [
        ["eth0", `ppe${idx(p)}c`, "ppe-br0", CLUSTER],
        ["net1", `ppe${idx(p)}s`, "ppe-br1", SEC],
      ]
    ) {
      await sh(
        "ip",
        "-n",
        n,
        "link",
        "add",
        ifname,
        "type",
        "veth",
        "peer",
        peer,
        "netns",
        NODE_NS,
      );
      await sh("ip", "-n", n, "addr", "add", `${base}${10 + idx(p)}/24`, "dev", ifname);
      await sh("ip", "-n", n, "link", "set", ifname, "up");
      await sh(...node, "link", "set", peer, "master", br, "up");
    }
  }
}

/** The case's policies with the model's 10.164/10.165 addresses moved to this test's. */
function moved(policies: Policy[]): Policy[] {
  return JSON.parse(
    JSON.stringify(policies).replaceAll("10.164.0.", CLUSTER).replaceAll("10.165.0.", SEC),
  );
}

function applyCase(c: PolicyCase) {
  const world = modelWorld(moved(c.policies), CLUSTER, SEC);
  c.mutate?.(world);
  for (const pod of world.pods) {
    runNftIn(`/run/netns/ppe-${pod.namespace}-${pod.name}`, renderPodTable(resolvePod(world, pod)));
  }
}

const PORTS: Array<[number, string]> = [[80, "TCP"], [81, "TCP"], [80, "UDP"], [81, "UDP"]];

/** Every probe of the truth table, compared with the case's expectation. */
async function truthTable(c: PolicyCase, agents: Agent[]): Promise<string[]> {
  const wrong: string[] = [];
  await Promise.all(PODS.map(async (s, si) => {
    const probes: Array<[string, number, string]> = [];
    const meta: Array<[P, "cluster" | "sec", number, string]> = [];
    for (const d of PODS) {
      if (d === s) continue;
      for (const net of ["cluster", "sec"] as const) {
        for (const [port, proto] of PORTS) {
          probes.push([`${net === "cluster" ? CLUSTER : SEC}${10 + idx(d)}`, port, proto]);
          meta.push([d, net, port, proto]);
        }
      }
    }
    const got = await agents[si].probe(probes);
    got.forEach((ok, i) => {
      const [d, net, port, proto] = meta[i];
      const want = expected(c, net)(s, d, port, proto as "TCP");
      if (ok !== want) {
        wrong.push(`${net} ${s.ns}/${s.pod} -> ${d.ns}/${d.pod} ${port}/${proto}: got ${ok}`);
      }
    });
  }));
  return wrong.sort();
}

Deno.test({
  name: "pod tables enforce the truth tables of the network-policy cases on real netns",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await topology();
    const agents = PODS.map((p) => new Agent(nsName(p)));
    const nodeAgent = new Agent(NODE_NS);
    try {
      for (const a of [...agents, nodeAgent]) assert.equal(await a.line(), "ready");
      // Ends with "no policy": every table removed (the policies deleted), everything open.
      const cases = LONG
        ? [...CASES.slice(1), CASES[0]]
        : SHORT.map((s) => CASES.find((c) => c.name.includes(s))!);
      for (const c of cases) {
        await t.step(c.name, async () => {
          applyCase(c);
          assert.deepEqual(await truthTable(c, agents), []);
          if (c.name === "default-deny ingress in x") {
            // The node's own traffic (kubelet probes) to an isolated pod passes.
            assert.deepEqual(await nodeAgent.probe([[`${CLUSTER}10`, 80, "TCP"]]), [true]);
          }
        });
      }
    } finally {
      await Promise.all([...agents, nodeAgent].map((a) => a.close()));
      await cleanup();
    }
  },
});
