/**
 * A running `podplex serve` follows the local policy files by itself (controllers/
 * local_policy): standalone pods made by the built `bin/podplex pod up --labels` on a bridge
 * (`ppq-sbr0`, 10.226.81.0/24), a daemon on a socket of its own under a temp dir, started
 * before its conf's policiesDir exists. Creating the folder with a deny-all ingress policy
 * closes web to every pod within a bounded wait, without `policy apply`; an allow-from-label
 * policy added beside it opens 80/TCP to the client alone; both files removed open it again.
 * Each step is probed from inside the pods' netns (tests/_policy_agent.ts).
 *
 * Needs root and libnftables (skipped without them). Run `deno task build` first.
 *
 * @module
 */
import { writeLan, writeLanConflist } from "./_policy_world.ts";
import { haveLibnftables, isRoot, run } from "./testutils.ts";
import assert from "node:assert/strict";
import { Agent } from "./_policy_probe.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const BIN = `${ROOT}bin/podplex`;
const BRIDGE = "ppq-sbr0";
const NAMES = ["ppq-sweb", "ppq-scli"];
/** How long a file change may take to be enforced (the debounce is 75 ms, a pass ms). */
const BOUND_MS = 5000;
/** The tables are read every this often while waiting. */
const ASK_MS = 10;
const dec = new TextDecoder();

const canRun = isRoot && haveLibnftables;

async function podplex(conf: string, ...args: string[]): Promise<string> {
  const env = { CNI_PATH: "/usr/lib/cni", PODPLEX_CONFIG: conf };
  const o = await new Deno.Command(BIN, { args, env, stdout: "piped", stderr: "piped" }).output();
  assert.equal(o.code, 0, `podplex ${args.join(" ")}: ${dec.decode(o.stderr)}`);
  return dec.decode(o.stdout);
}

/** A `podplex serve` of this test: its log so far, and stop. */
async function startDaemon(socket: string, conf: string) {
  const child = new Deno.Command(BIN, {
    args: ["serve", "--socket", socket, "--config", conf],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const reading = (async () => {
    for await (const chunk of child.stderr) log += dec.decode(chunk);
  })();
  let status: Deno.CommandStatus | undefined;
  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    if (!status) {
      try {
        child.kill(signal);
      } catch { /* gone */ }
      status = await child.status;
      await reading;
    }
    return status;
  };
  for (let i = 0; !log.includes("podplex serve: listening on"); i++) {
    if (i > 200) {
      await stop("SIGKILL");
      throw new Error(`podplex serve did not start: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { log: () => log, stop };
}

/** The ruleset of web's netns, "" without a table (one read: a pass may run meanwhile). */
function webTable(): Promise<string> {
  return run("ip", "netns", "exec", "ppq-sweb", "nft", "list", "ruleset");
}

/** Asks until `want` holds (the ms it took), failing after BOUND_MS. */
async function until(what: string, want: () => Promise<boolean>): Promise<number> {
  const t = performance.now();
  while (!(await want())) {
    if (performance.now() - t > BOUND_MS) throw new Error(`Not within ${BOUND_MS} ms: ${what}`);
    await new Promise((r) => setTimeout(r, ASK_MS));
  }
  return performance.now() - t;
}

const policy = (name: string, ingress: string) =>
  `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ${name}}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
${ingress}`;

async function cleanup(conf?: string) {
  for (const n of NAMES) {
    if (conf) await podplex(conf, "pod", "down", n).catch(() => {});
    await run("ip", "netns", "del", n).catch(() => {});
  }
  await run("ip", "link", "del", BRIDGE).catch(() => {});
}

Deno.test({
  name: "podplex serve re-renders the local pods' tables when a policy file changes",
  ignore: !canRun,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await cleanup();
    const dir = await Deno.makeTempDir({ prefix: "ppq-slocal" });
    const policies = `${dir}/policies.d`;
    const conf = `${dir}/podplex.conflist`;
    const agents: Agent[] = [];
    let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined;
    try {
      await writeLan(dir, BRIDGE, "10.226.81.0/24");
      await writeLanConflist(dir, policies);
      const ips: string[] = [];
      for (const [name, labels] of [["ppq-sweb", "app=web"], ["ppq-scli", "app=client"]]) {
        const view = JSON.parse(
          await podplex(conf, "pod", "up", name, "--labels", labels, "--json"),
        );
        ips.push(String(view.interfaces[0].ips[0]).replace(/\/.*/, ""));
      }
      const [webIp] = ips;
      const web = new Agent("ppq-sweb");
      const cli = new Agent("ppq-scli");
      agents.push(web, cli);
      for (const a of agents) assert.equal(await a.line(), "ready");
      const reach = async (port: number) => (await cli.probe([[webIp, port, "TCP"]]))[0];
      assert.equal(await reach(80), true, "open before any policy");

      daemon = await startDaemon(`${dir}/podplex.sock`, conf);
      assert.match(daemon.log(), /local policy: .*policies\.d does not exist yet/);

      await t.step("the folder made with a deny-all policy closes web", async () => {
        await Deno.mkdir(`${policies}/default`, { recursive: true });
        await Deno.writeTextFile(
          `${policies}/default/deny.yaml`,
          policy("deny", "  ingress: []\n"),
        );
        const ms = await until("web's table", async () => (await webTable()).trim() !== "");
        console.log(
          `  table in ${ms.toFixed(0)} ms after the folder appeared (looked at every 1 s)`,
        );
        assert.equal(await reach(80), false);
        assert.equal(await reach(81), false);
        assert.match(
          daemon!.log(),
          /local policy: 1 policy in .*: 2 pods re-rendered \(1 isolated/,
        );
      });

      await t.step("a file added in the watched folder opens 80/TCP to the client", async () => {
        await Deno.writeTextFile(
          `${policies}/default/allow.yaml`,
          policy(
            "allow",
            "  ingress:\n  - from: [{podSelector: {matchLabels: {app: client}}}]\n" +
              "    ports: [{port: 80, protocol: TCP}]\n",
          ),
        );
        const ms = await until("the allow rule", async () => /dport 80/.test(await webTable()));
        console.log(`  table updated ${ms.toFixed(0)} ms after the file was written`);
        assert.equal(await reach(80), true, "80 open to the client");
        assert.equal(await reach(81), false, "81 stays closed");
      });

      await t.step("the files removed open web again", async () => {
        await Deno.remove(`${policies}/default/deny.yaml`);
        await Deno.remove(`${policies}/default/allow.yaml`);
        const ms = await until("web's table gone", async () => (await webTable()).trim() === "");
        console.log(`  table gone ${ms.toFixed(0)} ms after the files were removed`);
        assert.equal(await reach(80), true);
        assert.equal(await reach(81), true);
      });

      const status = await daemon.stop();
      assert.equal(status.code, 0, daemon.log());
      assert.match(daemon.log(), /podplex serve: stopped/);
    } finally {
      await daemon?.stop("SIGKILL");
      await Promise.all(agents.map((a) => a.close()));
      await cleanup(conf);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
