/**
 * Local network policy end to end: standalone pods made by the built `bin/podplex pod up
 * --labels` on a cluster bridge (10.225.1.0/24 in the host netns, the node at .1),
 * NetworkPolicy files in a temp policiesDir, and a listener/prober agent
 * (tests/_policy_agent.ts) in each pod's netns. Every step probes the whole truth table
 * (every source × destination × 80/81 × TCP/UDP) and compares it with what the step
 * expects; `policy check` must give the probes' answers.
 *
 * Steps, on the same pods: a deny-all ingress in force before a pod's ADD (its table is in
 * its netns when `pod up` returns); an allow-from-label that takes effect only after
 * `policy apply`; a pod with the label coming up later is let in without `policy apply`
 * (the ADD re-renders the pods whose peers it joins) and leaves their sets on `pod down`;
 * a policy with bad rules (a CIDR that is not one, an unknown protocol, a named port no
 * container has), whose valid rule still closes the other ports; the files removed and
 * `policy apply` opening everything again.
 *
 * Needs root and libnftables (skipped without them, with the reason). Run
 * `deno task build` first: the test execs the built artifact.
 *
 * @module
 */
import { writeLan, writeLanConflist } from "./_policy_world.ts";
import { haveLibnftables, isRoot, run } from "./testutils.ts";
import assert from "node:assert/strict";
import { Agent } from "./_policy_probe.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const BIN = `${ROOT}bin/podplex`;
const BRIDGE = "ppe-lbr0";
const NET = "10.225.1.";
const dec = new TextDecoder();

const canRun = isRoot && haveLibnftables;

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

interface Fix {
  dir: string;
  conf: string;
  policies: string;
}

async function podplex(f: Fix, ...args: string[]): Promise<Out> {
  const env = { CNI_PATH: "/usr/lib/cni", PODPLEX_CONFIG: f.conf };
  const o = await new Deno.Command(BIN, { args, env, stdout: "piped", stderr: "piped" }).output();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

async function ok(f: Fix, ...args: string[]): Promise<Out> {
  const o = await podplex(f, ...args);
  assert.equal(o.code, 0, `podplex ${args.join(" ")} failed (${o.code}): ${o.stderr}`);
  return o;
}

async function fixture(): Promise<Fix> {
  const dir = await Deno.makeTempDir({ prefix: "ppe-local" });
  const policies = `${dir}/policies.d`;
  await Deno.mkdir(`${policies}/default`, { recursive: true });
  await writeLan(dir, BRIDGE, `${NET}0/24`, { routes: [{ dst: "0.0.0.0/0" }] });
  const conf = await writeLanConflist(dir, policies);
  return { dir, conf, policies };
}

/** A NetworkPolicy for the pods labelled app=web, as YAML. */
function webPolicy(name: string, ingress: string): string {
  return `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ${name}, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
${ingress}`;
}

const DENY_ALL = webPolicy("deny-web", "  ingress: []\n");
const ALLOW_CLIENT = webPolicy(
  "allow-client",
  `  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 80, protocol: TCP}]
`,
);
const BAD_RULES = webPolicy(
  "bad-rules",
  `  ingress:
  - from: [{ipBlock: {cidr: "10.225.1.300/33"}}]
  - ports: [{port: 81, protocol: ICMP}]
  - ports: [{port: http, protocol: TCP}]
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 80, protocol: TCP}]
`,
);

interface Pod {
  name: string;
  ip: string;
  agent?: Agent;
}

const PORTS: Array<[number, "TCP" | "UDP"]> = [[80, "TCP"], [81, "TCP"], [80, "UDP"], [81, "UDP"]];
type Want = (src: string, dst: string, port: number, proto: string) => boolean;

/** Probes every source × destination × port and returns the probes that differ from `want`. */
async function truthTable(pods: Pod[], want: Want): Promise<string[]> {
  const wrong: string[] = [];
  await Promise.all(pods.map(async (s) => {
    const others = pods.filter((d) => d !== s);
    const probes = others.flatMap((d) =>
      PORTS.map(([port, proto]) => [d.ip, port, proto] as [string, number, string])
    );
    const got = await s.agent!.probe(probes);
    got.forEach((ok, i) => {
      const d = others[Math.floor(i / PORTS.length)];
      const [port, proto] = PORTS[i % PORTS.length];
      if (ok !== want(s.name, d.name, port, proto)) {
        wrong.push(`${s.name} -> ${d.name} ${port}/${proto}: got ${ok}`);
      }
    });
  }));
  return wrong.sort();
}

/** `policy check` for every source into `dst`: its exit code must be what `want` says. */
async function checkMatches(f: Fix, pods: Pod[], dst: string, want: Want): Promise<string[]> {
  const wrong: string[] = [];
  for (const s of pods.filter((p) => p.name !== dst)) {
    for (const [port, proto] of PORTS) {
      const o = await podplex(f, "policy", "check", s.name, `default/${dst}`, `${port}/${proto}`);
      const expect = want(s.name, dst, port, proto);
      if (o.code !== (expect ? 0 : 1) || !o.stdout.startsWith(expect ? "allowed" : "denied")) {
        wrong.push(`${s.name} -> ${dst} ${port}/${proto}: exit ${o.code}: ${o.stdout}${o.stderr}`);
      }
    }
  }
  return wrong;
}

async function up(f: Fix, name: string, labels: string): Promise<Pod> {
  const o = await ok(f, "pod", "up", name, "--labels", labels, "--json");
  const view = JSON.parse(o.stdout);
  return { name, ip: String(view.interfaces[0].ips[0]).replace(/\/.*/, "") };
}

async function tcpFromNode(ip: string, port: number): Promise<boolean> {
  const c = Deno.connect({ hostname: ip, port });
  c.then((s) => s.close(), () => {});
  const t = new Promise<false>((r) => setTimeout(() => r(false), 1500));
  return await Promise.race([c.then(() => true, () => false), t]);
}

const NAMES = ["ppe-cli", "ppe-oth", "ppe-web", "ppe-cl2"];

async function cleanup(f?: Fix) {
  for (const n of NAMES) {
    if (f) await podplex(f, "pod", "down", n).catch(() => {});
    await run("ip", "netns", "del", n).catch(() => {});
  }
  await run("ip", "link", "del", BRIDGE).catch(() => {});
  if (f) await Deno.remove(f.dir, { recursive: true }).catch(() => {});
}

Deno.test({
  name: "local policies are enforced in standalone pods from their ADD, and follow the files",
  ignore: !canRun,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await cleanup();
    const f = await fixture();
    const pods: Pod[] = [];
    try {
      await Deno.writeTextFile(`${f.policies}/default/deny.yaml`, DENY_ALL);
      pods.push(await up(f, "ppe-cli", "app=client"), await up(f, "ppe-oth", "app=other"));
      pods.push(await up(f, "ppe-web", "app=web,tier=front"));

      await t.step("the table is in the netns when pod up returns", async () => {
        const table = await run(
          "ip",
          "netns",
          "exec",
          "ppe-web",
          "nft",
          "list",
          "table",
          "inet",
          "podplex",
        );
        assert.match(table, /chain in_eth0 \{[^}]*drop/s);
        // The pods no policy selects have no table at all.
        const other = await run("ip", "netns", "exec", "ppe-cli", "nft", "list", "tables");
        assert.equal(other.trim(), "");
      });

      for (const p of pods) p.agent = new Agent(p.name);
      for (const p of pods) assert.equal(await p.agent!.line(), "ready");

      const denyWeb: Want = (_s, d) => d !== "ppe-web";
      await t.step("deny-all ingress: nothing reaches web, everything else passes", async () => {
        assert.deepEqual(await truthTable(pods, denyWeb), []);
        assert.deepEqual(await checkMatches(f, pods, "ppe-web", denyWeb), []);
        // The node's own traffic (kubelet probes) still reaches the isolated pod.
        assert.equal(await tcpFromNode(pods[2].ip, 80), true);
      });

      const allowClient: Want = (s, d, port, proto) =>
        d !== "ppe-web" || (s.startsWith("ppe-cl") && port === 80 && proto === "TCP");
      await t.step("allow-from-label takes effect on policy apply", async () => {
        await Deno.writeTextFile(`${f.policies}/default/allow.yaml`, ALLOW_CLIENT);
        assert.deepEqual(await truthTable(pods, denyWeb), [], "files alone change nothing");
        const o = await ok(f, "policy", "apply");
        assert.match(o.stdout, /default\/ppe-web: table applied \(isolated: eth0\)/);
        assert.match(o.stdout, /default\/ppe-cli: no policy selects it: no table/);
        assert.deepEqual(await truthTable(pods, allowClient), []);
        assert.deepEqual(await checkMatches(f, pods, "ppe-web", allowClient), []);
        const show = await ok(f, "policy", "show", "ppe-web");
        assert.match(
          show.stdout,
          /isolated by NetworkPolicy default\/allow-client, NetworkPolicy default\/deny-web|isolated by NetworkPolicy default\/deny-web, NetworkPolicy default\/allow-client/,
        );
        assert.match(
          show.stdout,
          new RegExp(`allow from ${pods[0].ip} \\(podSelector\\) on 80/TCP`),
        );
      });

      await t.step("a pod with the label coming up is let in without policy apply", async () => {
        const cl2 = await up(f, "ppe-cl2", "app=client");
        cl2.agent = new Agent(cl2.name);
        assert.equal(await cl2.agent.line(), "ready");
        pods.push(cl2);
        assert.deepEqual(await truthTable(pods, allowClient), []);
        await pods.pop()!.agent!.close();
        await ok(f, "pod", "down", "ppe-cl2");
        const table = await run(
          "ip",
          "netns",
          "exec",
          "ppe-web",
          "nft",
          "list",
          "table",
          "inet",
          "podplex",
        );
        assert.ok(
          !table.includes(cl2.ip),
          `the set still holds ${cl2.ip} after pod down:\n${table}`,
        );
      });

      await t.step(
        "bad rules are dropped; the valid rule still closes the other ports",
        async () => {
          await Deno.remove(`${f.policies}/default/allow.yaml`);
          await Deno.remove(`${f.policies}/default/deny.yaml`);
          await Deno.writeTextFile(`${f.policies}/default/bad.yaml`, BAD_RULES);
          const o = await ok(f, "policy", "apply");
          assert.match(o.stderr, /spec\.ingress\[0\]\.from\[0\]\.ipBlock\.cidr/);
          assert.match(o.stderr, /spec\.ingress\[1\]\.ports\[0\]\.protocol/);
          assert.deepEqual(await truthTable(pods, allowClient), []);
          const show = await ok(f, "policy", "show", "default/ppe-web");
          assert.match(
            show.stdout,
            /dropped: NetworkPolicy default\/bad-rules ingress\[2\]: http\/TCP/,
          );
          assert.match(show.stdout, /ipBlock\.cidr: .*10\.225\.1\.300\/33/);
          assert.match(show.stdout, /ports\[0\]\.protocol: .*ICMP/);
        },
      );

      await t.step("the files removed, policy apply opens everything", async () => {
        await Deno.remove(`${f.policies}/default/bad.yaml`);
        await ok(f, "policy", "apply");
        assert.deepEqual(await truthTable(pods, () => true), []);
        const tables = await run("ip", "netns", "exec", "ppe-web", "nft", "list", "tables");
        assert.equal(tables.trim(), "");
      });

      await t.step("policy check: usage errors exit 2", async () => {
        assert.equal(
          (await podplex(f, "policy", "check", "ppe-cli", "ppe-nope", "80/TCP")).code,
          2,
        );
        assert.equal(
          (await podplex(f, "policy", "check", "ppe-cli", "ppe-web", "80/ICMP")).code,
          2,
        );
        assert.equal((await podplex(f, "policy", "check", "ppe-cli", "ppe-web")).code, 2);
      });
    } finally {
      await Promise.all(pods.map((p) => p.agent?.close()));
      await cleanup(f);
    }
  },
});
