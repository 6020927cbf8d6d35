/**
 * What the built artifact loads on a per-call ADD and DEL (the bundle's chunks, each read
 * with openat when it is imported, seen with strace): without local policies none of the
 * policy code (parse, resolve, render, the local source, the ADD's enforcement step); with a
 * policy that selects the pod all of it, and the pod gets its table (the control that shows
 * the markers and the trace work). Real netns, bridge `ppq-llbr0` (10.226.78.0/24).
 *
 * Needs root, strace and libnftables (skipped without them). Run `deno task build` first.
 *
 * @module
 */
import { lanConf, writeLan } from "./_policy_world.ts";
import { haveLibnftables, isRoot, run } from "./testutils.ts";
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;
const BIN = `${ROOT}bin/podplex`;
const NS = "ppq-ll";
const BRIDGE = "ppq-llbr0";
const ANN = "io.kubernetes.cri.pod-annotations";
const dec = new TextDecoder();

/** Functions of the policy modules, as the bundle names them (one per module). */
const MARKERS = [
  "function parsePolicy(", //        meta/policy/parse.ts
  "function resolvePod(", //         meta/policy/resolve.ts
  "function renderPodTable(", //     meta/policy/render.ts
  "function localPolicySource(", //  meta/policy/local.ts
  "function enforceOnAdd(", //       meta/policy/enforce.ts
];

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

const canRun = isRoot && haveLibnftables && ["/usr/bin/strace", "/bin/strace"].some(exists);

/** One CNI call of bin/podplex under strace; the bundle's .js files it opened. */
async function tracedCall(
  dir: string,
  verb: "ADD" | "DEL",
  conf: Record<string, unknown>,
): Promise<string[]> {
  const trace = `${dir}/strace-${verb}-${crypto.randomUUID()}.txt`;
  const c = new Deno.Command("strace", {
    args: ["-f", "-qq", "-e", "trace=openat", "-o", trace, BIN],
    env: {
      CNI_COMMAND: verb,
      CNI_CONTAINERID: "ppq-ll1",
      CNI_NETNS: `/run/netns/${NS}`,
      CNI_IFNAME: "eth0",
      CNI_PATH: "/usr/lib/cni",
      CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web",
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = c.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(conf)));
  await w.close();
  const o = await c.output();
  assert.equal(o.code, 0, `${verb}: ${dec.decode(o.stdout)} ${dec.decode(o.stderr)}`);
  const opened = new Set<string>();
  for (const line of (await Deno.readTextFile(trace)).split("\n")) {
    const m = /openat\([^"]*"([^"]+\/podplex\.d\/[^"/]+\/[^"/]+\.js)"/.exec(line);
    if (m && !line.includes("= -1")) opened.add(m[1]);
  }
  return [...opened];
}

/** The markers found in the given chunks. */
function markersIn(chunks: string[]): string[] {
  const text = chunks.map((c) => Deno.readTextFileSync(c)).join("\n");
  return MARKERS.filter((m) => text.includes(m));
}

Deno.test({
  name: "a per-call ADD and DEL without local policies load no policy code; with one, all",
  ignore: !canRun,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "ppq-lazy" });
    await run("ip", "netns", "del", NS).catch(() => {});
    await run("ip", "link", "del", BRIDGE).catch(() => {});
    try {
      await writeLan(dir, BRIDGE, "10.226.78.0/24");
      const conf = (policiesDir: string) => ({
        ...lanConf(dir, policiesDir),
        runtimeConfig: { [ANN]: { "podplex.io/labels": "app=web" } },
      });
      await run("ip", "netns", "add", NS);

      // An empty folder: the same as none (a namespace folder without a file).
      await Deno.mkdir(`${dir}/empty.d/default`, { recursive: true });
      for (const policies of [`${dir}/none`, `${dir}/empty.d`]) {
        const add = await tracedCall(dir, "ADD", conf(policies));
        assert.ok(add.length > 10, `the trace saw the chunks: ${add.join(" ")}`);
        assert.deepEqual(markersIn(add), [], `ADD (${policies}) loaded policy code`);
        assert.equal((await run("ip", "netns", "exec", NS, "nft", "list", "tables")).trim(), "");
        const del = await tracedCall(dir, "DEL", conf(policies));
        assert.deepEqual(markersIn(del), [], `DEL (${policies}) loaded policy code`);
      }

      await Deno.mkdir(`${dir}/policies.d/default`, { recursive: true });
      await Deno.writeTextFile(
        `${dir}/policies.d/default/deny.yaml`,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-web}\n" +
          "spec:\n  podSelector: {matchLabels: {app: web}}\n  policyTypes: [Ingress]\n",
      );
      const add = await tracedCall(dir, "ADD", conf(`${dir}/policies.d`));
      assert.deepEqual(markersIn(add), MARKERS, "ADD with a policy in force");
      assert.match(
        await run("ip", "netns", "exec", NS, "nft", "list", "table", "inet", "podplex"),
        /chain in_eth0 \{[^}]*drop/s,
      );
      await tracedCall(dir, "DEL", conf(`${dir}/policies.d`));
    } finally {
      await run("ip", "netns", "del", NS).catch(() => {});
      await run("ip", "link", "del", BRIDGE).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
