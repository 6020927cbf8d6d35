/**
 * `podplex serve --network-policy` end to end, as root: three pods (x/a, x/b, y/c) ADDed
 * through a private daemon on real netns, each with eth0 on the cluster bridge network
 * default/net-a (10.227.0.0/24) and net1 on the secondary bridge network default/net-b
 * (10.228.0.0/24), a TCP/UDP listener on 80 and 81 in each (tests/_policy_agent.ts). The
 * policies, pods' labels and namespaces' labels change on the API server; what each pod can
 * reach is probed until it is what the change says (bounded waits, no timing asserted). The
 * pods are ADDed before the daemon could sync (the server answers 404 for namespaces until
 * then): they start deny-all and open when it syncs.
 *
 * The API server is tests/k8s_fake_server.ts: no kube-apiserver is installable here, so a
 * small local server speaking the endpoints podplex uses (pods, namespaces, NetworkPolicies,
 * MultiNetworkPolicies v1beta1/v1beta2: LIST and WATCH) stands in. Kubelet's part (pods'
 * `status.podIPs`) is played by the test. Needs `deno task build`.
 */
import assert from "node:assert/strict";
import { NETWORKS_ANNOTATION } from "../meta/annotations.ts";
import { isRoot, run, tryRun } from "./testutils.ts";
import { type FakeKubeApi, startFakeKubeApi } from "./k8s_fake_server.ts";

const BIN = new URL("../bin/podplex", import.meta.url).pathname;
const AGENT = new URL("./_policy_agent.ts", import.meta.url).pathname;
const NP = "/apis/networking.k8s.io/v1/networkpolicies";
const MNP = "/apis/k8s.cni.cncf.io/v1beta2/multi-networkpolicies";
const NS = "/api/v1/namespaces";
const PODS = [["x", "a"], ["x", "b"], ["y", "c"]] as const;
type Pod = typeof PODS[number];
const dec = new TextDecoder();
const enc = new TextEncoder();

/** One agent (tests/_policy_agent.ts) inside a pod's netns. */
class Agent {
  #child: Deno.ChildProcess;
  #reader: ReadableStreamDefaultReader<string>;
  #buf = "";
  constructor(netns: string) {
    this.#child = new Deno.Command("ip", {
      args: ["netns", "exec", netns, Deno.execPath(), "run", "-A", "--unstable-net", AGENT],
      stdin: "piped",
      stdout: "piped",
      env: { PPE_PROBE_TIMEOUT_MS: "500" },
    }).spawn();
    this.#reader = this.#child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  }
  async line(): Promise<string> {
    for (;;) {
      const nl = this.#buf.indexOf("\n");
      if (nl >= 0) {
        const l = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 1);
        return l;
      }
      const { value, done } = await this.#reader.read();
      if (done) throw new Error("The probe agent exited");
      this.#buf += value;
    }
  }
  async probe(ip: string, port: number, proto = "TCP"): Promise<boolean> {
    const w = this.#child.stdin.getWriter();
    await w.write(enc.encode(JSON.stringify([[ip, port, proto]]) + "\n"));
    w.releaseLock();
    return (JSON.parse(await this.line()) as boolean[])[0];
  }
  async close() {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* gone */ }
    await this.#child.status;
    await this.#reader.cancel().catch(() => {});
  }
}

function kubeconfig(url: string): string {
  return `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${url}"}}]\n` +
    `users: [{name: u, user: {token: t}}]\n` +
    `contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`;
}

interface Node extends AsyncDisposable {
  api: FakeKubeApi;
  ip(p: Pod, net: "cluster" | "sec"): string;
  agent(p: Pod): Agent;
  log(): string;
  /** The daemon's metrics text. */
  metrics(): Promise<string>;
}

const nsName = (p: Pod) => `ppf-${p[0]}${p[1]}`;

async function network(dir: string, name: string, bridge: string, subnet: string) {
  await Deno.writeTextFile(
    `${dir}/networks.d/default/${name}.json`,
    JSON.stringify({
      cniVersion: "1.0.0",
      name,
      type: "bridge",
      bridge,
      isGateway: true,
      ipam: { type: "host-local", subnet, dataDir: `${dir}/leases` },
    }),
  );
}

/** The daemon, the API server, and the three pods ADDed through the daemon. */
async function startNode(): Promise<Node> {
  const dir = await Deno.makeTempDir({ prefix: "ppf" });
  const api = await startFakeKubeApi({ token: "t" });
  const cleanups: Array<() => Promise<unknown>> = [
    () => Deno.remove(dir, { recursive: true }),
    () => api.stop(),
    () => tryRun("ip", "link", "del", "ppfbrA"),
    () => tryRun("ip", "link", "del", "ppfbrB"),
  ];
  const agents = new Map<string, Agent>();
  const ips = new Map<string, { cluster: string; sec: string }>();
  let log = "";
  const dispose = async () => {
    for (const a of agents.values()) await a.close();
    for (const c of cleanups.reverse()) await c().catch(() => {});
  };
  try {
    await Deno.mkdir(`${dir}/networks.d/default`, { recursive: true });
    await network(dir, "net-a", "ppfbrA", "10.227.0.0/24");
    await network(dir, "net-b", "ppfbrB", "10.228.0.0/24");
    await Deno.writeTextFile(`${dir}/kubeconfig`, kubeconfig(api.url));
    api.put(NS, { metadata: { name: "x", labels: { ns: "x" } } });
    api.put(NS, { metadata: { name: "y", labels: { ns: "y" } } });
    // Until the test serves namespaces, the daemon cannot sync: its ADDs are deny-all.
    api.notServed.add(NS);
    const socket = `${dir}/ppf.sock`;
    const child = new Deno.Command(BIN, {
      args: [
        "serve",
        "--socket",
        socket,
        "--node-name",
        "node-1",
        "--network-policy",
        "--kubeconfig",
        `${dir}/kubeconfig`,
        "--state-dir",
        `${dir}/state`,
        "--metrics-socket",
        `${dir}/metrics.sock`,
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const reading = (async () => {
      for await (const chunk of child.stderr) log += dec.decode(chunk);
    })();
    cleanups.splice(1, 0, async () => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
      await reading;
    });
    await waitFor(
      "the daemon to listen",
      () => log.includes("podplex serve: listening on"),
      () => log,
    );
    const conf = JSON.stringify({
      cniVersion: "1.0.0",
      name: "podplex",
      type: "podplex",
      clusterNetwork: "default/net-a",
      networksDir: `${dir}/networks.d`,
      stateDir: `${dir}/state`,
      kubeconfig: `${dir}/kubeconfig`,
    });
    for (const p of PODS) {
      const [ns, name] = p;
      api.addPod(ns, name, { [NETWORKS_ANNOTATION]: "default/net-b" });
      api.setPodExtras(ns, name, { labels: { pod: name } });
      await run("ip", "netns", "add", nsName(p));
      cleanups.push(() => run("ip", "netns", "del", nsName(p)));
      await run("ip", "-n", nsName(p), "link", "set", "lo", "up");
      const out = await new Deno.Command(BIN, {
        env: {
          PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
          CNI_COMMAND: "ADD",
          CNI_CONTAINERID: `ppf-${ns}-${name}`,
          CNI_NETNS: `/run/netns/${nsName(p)}`,
          CNI_IFNAME: "eth0",
          CNI_PATH: "/usr/lib/cni",
          CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${name}`,
          PODPLEX_SOCKET: socket,
        },
        clearEnv: true,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const w = out.stdin.getWriter();
      await w.write(enc.encode(conf));
      await w.close();
      const o = await out.output();
      assert.equal(
        o.code,
        0,
        `ADD of ${ns}/${name}: ${dec.decode(o.stdout)}${dec.decode(o.stderr)}`,
      );
      const status = JSON.parse(
        api.pods.get(`${ns}/${name}`)!.annotations["k8s.v1.cni.cncf.io/network-status"],
      ) as Array<{ interface?: string; ips?: string[] }>;
      const of = (i: string) => status.find((e) => e.interface === i)!.ips![0];
      ips.set(`${ns}/${name}`, { cluster: of("eth0"), sec: of("net1") });
      api.setPodExtras(ns, name, { podIPs: [of("eth0")] }); // kubelet, from the CNI result
      const agent = new Agent(nsName(p));
      agents.set(`${ns}/${name}`, agent);
      assert.equal(await agent.line(), "ready");
    }
  } catch (e) {
    await dispose();
    throw new Error(`${(e as Error).message}\n--- daemon log ---\n${log}`);
  }
  return {
    api,
    ip: (p, net) => ips.get(`${p[0]}/${p[1]}`)![net],
    agent: (p) => agents.get(`${p[0]}/${p[1]}`)!,
    log: () => log,
    async metrics() {
      const out = await new Deno.Command("curl", {
        args: ["-sf", "--unix-socket", `${dir}/metrics.sock`, "http://x/metrics"],
        stdout: "piped",
      }).output();
      return dec.decode(out.stdout);
    },
    [Symbol.asyncDispose]: dispose,
  };
}

/** Waits until `cond` holds, at most 20 s (generous: a loaded machine). */
async function waitFor(what: string, cond: () => boolean | Promise<boolean>, log = () => "") {
  const end = Date.now() + 20_000;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}\n${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const [XA, XB, YC] = PODS;

Deno.test({
  name: "network policy daemon: policies, pod and namespace labels, MultiNetworkPolicy take effect",
  ignore: !isRoot,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using node = await startNode();
    const { api } = node;
    /** Waits until `src` reaching `dst` on port 80 of `net` is `open`. */
    const expect = (src: Pod, dst: Pod, net: "cluster" | "sec", open: boolean) =>
      waitFor(
        `${src.join("/")} -> ${dst.join("/")}:80 on ${net} ${open ? "open" : "closed"}`,
        async () => (await node.agent(src).probe(node.ip(dst, net), 80)) === open,
        node.log,
      );
    await t.step("ADDed before the daemon synced: deny-all, opened by the sync", async () => {
      assert.equal(await node.agent(XB).probe(node.ip(XA, "cluster"), 80), false);
      assert.equal(await node.agent(YC).probe(node.ip(XA, "sec"), 80), false);
      assert.doesNotMatch(node.log(), /synced with the API server/);
      api.notServed.delete(NS);
      await waitFor("the sync", () => /synced with the API server/.test(node.log()), node.log);
    });
    await t.step("no policy: everything open", async () => {
      await expect(XB, XA, "cluster", true);
      await expect(YC, XA, "cluster", true);
      await expect(XB, XA, "sec", true);
    });
    await t.step("a NetworkPolicy created closes x/a's port 80 to all but friends", async () => {
      api.put(NP, {
        metadata: { namespace: "x", name: "friends" },
        spec: {
          podSelector: { matchLabels: { pod: "a" } },
          ingress: [{
            from: [{ namespaceSelector: {}, podSelector: { matchLabels: { role: "friend" } } }],
          }],
        },
      });
      await expect(XB, XA, "cluster", false);
      await expect(YC, XA, "cluster", false);
      await expect(XB, XA, "sec", true); // NetworkPolicy leaves the secondary network alone
      await expect(XA, XB, "cluster", true); // x/b is not selected
    });
    await t.step("x/b labelled role=friend reaches x/a again", async () => {
      api.setPodExtras("x", "b", { labels: { pod: "b", role: "friend" } });
      await expect(XB, XA, "cluster", true);
      await expect(YC, XA, "cluster", false);
    });
    await t.step("y/c labelled role=friend and back: x/a's peer set updated", async () => {
      api.setPodExtras("y", "c", { labels: { pod: "c", role: "friend" } });
      await expect(YC, XA, "cluster", true);
      api.setPodExtras("y", "c", { labels: { pod: "c" } });
      await expect(YC, XA, "cluster", false);
      await expect(XB, XA, "cluster", true);
    });
    await t.step("namespace y labelled team=blue opens x/a to y/c", async () => {
      api.put(NP, {
        metadata: { namespace: "x", name: "from-blue" },
        spec: {
          podSelector: { matchLabels: { pod: "a" } },
          ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "blue" } } }] }],
        },
      });
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await node.agent(YC).probe(node.ip(XA, "cluster"), 80), false);
      api.put(NS, { metadata: { name: "y", labels: { ns: "y", team: "blue" } } });
      await expect(YC, XA, "cluster", true);
    });
    await t.step("the policies deleted: open again", async () => {
      api.setPodExtras("x", "b", { labels: { pod: "b" } });
      api.remove(NP, "x/friends");
      api.remove(NP, "x/from-blue");
      await expect(XB, XA, "cluster", true);
      await expect(YC, XA, "cluster", true);
    });
    await t.step("a MultiNetworkPolicy on net-b closes only the secondary network", async () => {
      api.put(MNP, {
        apiVersion: "k8s.cni.cncf.io/v1beta2",
        kind: "MultiNetworkPolicy",
        metadata: {
          namespace: "x",
          name: "sec-deny",
          annotations: { "k8s.v1.cni.cncf.io/policy-for": "default/net-b" },
        },
        spec: { podSelector: { matchLabels: { pod: "a" } }, policyTypes: ["Ingress"] },
      });
      await expect(XB, XA, "sec", false);
      await expect(YC, XA, "sec", false);
      await expect(XB, XA, "cluster", true);
      await expect(XA, XB, "sec", true);
    });
    assert.match(node.log(), /network policy: synced with the API server/);
    const metrics = await node.metrics();
    assert.match(metrics, /podplex_policy_pods 3\n/);
    assert.match(metrics, /podplex_policy_pods_enforced 1\n/); // x/a (the MultiNetworkPolicy)
    // y/c's label changes updated x/a's peer set without replacing its table.
    assert.match(metrics, /podplex_policy_updates_total [1-9]/);
    assert.match(metrics, /podplex_policy_render_errors_total 0\n/);
  },
});
