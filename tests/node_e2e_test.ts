/**
 * podplex on a bare node, end to end. `podplex install` puts the artifact into a temp root
 * standing in for the host (bin/, net.d/, a service account whose kubeconfig reaches the fake
 * API server over TLS). Then, in a mount namespace where Deno, node, npm, the Deno cache, the
 * checkout and the system's libnl are hidden (tmpfs and /dev/null over them), a libcni-style
 * runtime (tests/cni_runner.py: conf dir, capability args, result cache, CHECK and DEL with
 * prevResult) drives ADD, CHECK and DEL through the installed podplex: the default network
 * wrapped by install as the cluster network, a YAML NAD on disk as the pod's second network,
 * network-status written to the API server.
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { startFakeKubeApi } from "./k8s_fake_server.ts";
import { makeCerts } from "./etcd_server.ts";
import { ipJson, isRoot, leaseFiles, linkExists, tempDir, tempNetns, tryRun } from "./testutils.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const LAUNCHER = `${ROOT}/bin/podplex`;
const dec = new TextDecoder();

async function sh(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** What the node namespace must not see: the tools a bare node lacks, and the checkout. */
async function hiddenPaths(): Promise<{ dirs: string[]; files: string[] }> {
  const home = Deno.env.get("HOME") ?? "/root";
  const dirs = [ROOT, Deno.env.get("DENO_DIR") ?? `${home}/.cache/deno`, `${home}/.npm`];
  const files: string[] = [];
  for (const tool of ["deno", "node", "npm", "npx"]) {
    const found = (await sh("sh", ["-c", `command -v ${tool} || true`])).stdout.trim();
    if (!found) continue;
    const real = await Deno.realPath(found);
    // npm and npx are scripts in node's lib dir: hide the whole package dir.
    const pkg = real.match(/^(.*\/node_modules\/[^/]+)\//)?.[1];
    if (pkg) dirs.push(pkg);
    else files.push(real);
  }
  const ldconfig = (await sh("/sbin/ldconfig", ["-p"])).stdout;
  for (const m of ldconfig.matchAll(/^\s*(libnl-(?:route-)?3\.so\.200) .*=> (\S+)$/gm)) {
    files.push(await Deno.realPath(m[2]));
  }
  return { dirs: [...new Set(dirs)], files: [...new Set(files)] };
}

/** The namespace's entry: hides, checks that it hid, then runs the runner. */
function hideScript(h: { dirs: string[]; files: string[] }, runner: string): string {
  const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
  return [
    "set -e",
    ...h.dirs.map((d) => `[ -d ${q(d)} ] && mount -t tmpfs -o size=64m tmpfs ${q(d)}`),
    ...h.files.map((f) => `mount --bind /dev/null ${q(f)}`),
    `[ -z "$(ls -A ${q(ROOT)})" ] || { echo "the checkout is visible" >&2; exit 97; }`,
    ...h.files.map((f) => `[ ! -s ${q(f)} ] || { echo ${q(f)}" is visible" >&2; exit 97; }`),
    `exec /usr/bin/python3 ${q(runner)} "$@"`,
  ].join("\n");
}

Deno.test({
  name:
    "installed podplex serves ADD, CHECK, DEL of a libcni runtime with no Deno, node, checkout or libnl",
  ignore: !isRoot,
  async fn() {
    await using tmp = await tempDir("ppn-e2e");
    const r = tmp.path;
    for (const d of ["bin", "net.d", "sa", "nets/default", "tls", "cache"]) {
      await Deno.mkdir(`${r}/${d}`, { recursive: true });
    }
    const certs = await makeCerts(`${r}/tls`);
    await using api = await startFakeKubeApi({
      token: "e2e-token",
      cert: await Deno.readTextFile(certs.server.cert),
      key: await Deno.readTextFile(certs.server.key),
    });
    api.addPod("default", "web");
    await Deno.writeTextFile(`${r}/sa/token`, "e2e-token\n");
    await Deno.copyFile(certs.client.ca, `${r}/sa/ca.crt`);

    const n = 20 + Math.floor(Math.random() * 200);
    const tag = crypto.randomUUID().slice(0, 6);
    const bridges = [`ppnd${tag}`, `ppnl${tag}`];
    const hostLocal = (subnet: string) => ({ type: "host-local", subnet, dataDir: `${r}/leases` });
    await Deno.writeTextFile(
      `${r}/net.d/10-default.conflist`,
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "default-net",
        plugins: [{ type: "bridge", bridge: bridges[0], ipam: hostLocal(`10.201.${n}.0/24`) }],
      }),
    );
    await Deno.writeTextFile(
      `${r}/nets/default/lan.yaml`,
      [
        "apiVersion: k8s.cni.cncf.io/v1",
        "kind: NetworkAttachmentDefinition",
        "metadata: {name: lan, namespace: default}",
        "spec:",
        "  config: |",
        `    {"cniVersion": "1.0.0", "type": "bridge", "bridge": "${bridges[1]}",`,
        `     "ipam": ${JSON.stringify(hostLocal(`10.201.${n + 1}.0/24`))}}`,
      ].join("\n") + "\n",
    );
    await Deno.writeTextFile(
      `${r}/podplex.json`,
      JSON.stringify({ networksDir: `${r}/nets`, stateDir: `${r}/state` }),
    );
    const port = new URL(api.url).port;
    const inst = await sh(LAUNCHER, [
      "install",
      "--bin-dir",
      `${r}/bin`,
      "--conf-dir",
      `${r}/net.d`,
      "--service-account-dir",
      `${r}/sa`,
      "--podplex-conf",
      `${r}/podplex.json`,
      "--kubeconfig-file-host",
      `${r}/net.d/podplex.d/podplex.kubeconfig`,
    ], { KUBERNETES_SERVICE_HOST: "127.0.0.1", KUBERNETES_SERVICE_PORT: port });
    assertEquals(inst.code, 0, inst.stdout + inst.stderr);

    await Deno.copyFile(`${ROOT}/tests/cni_runner.py`, `${r}/cni_runner.py`);
    await Deno.writeTextFile(`${r}/node.sh`, hideScript(await hiddenPaths(), `${r}/cni_runner.py`));
    await using ns = await tempNetns("ppn");
    const cid = `ppne2e${tag}`;
    const runtime = (cmd: string) =>
      sh("unshare", [
        "-m",
        "--propagation",
        "private",
        "sh",
        `${r}/node.sh`,
        cmd,
        "--conf-dir",
        `${r}/net.d`,
        "--cni-path",
        `${r}/bin`,
        "--cache-dir",
        `${r}/cache`,
        "--netns",
        ns.path,
        "--container-id",
        cid,
        "--args",
        `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=${cid}`,
        "--cap",
        `io.kubernetes.cri.pod-annotations=${
          JSON.stringify({ "k8s.v1.cni.cncf.io/networks": "lan" })
        }`,
      ]);
    try {
      const add = await runtime("ADD");
      assertEquals(add.code, 0, add.stdout + add.stderr);
      const result = JSON.parse(add.stdout);
      const addrs = result.ips.map((ip: { address: string }) => ip.address);
      assertEquals(addrs, [`10.201.${n}.2/24`, `10.201.${n + 1}.2/24`]);
      for (const [dev, addr] of [["eth0", addrs[0]], ["net1", addrs[1]]]) {
        const got = await ipJson(ns.name, "addr", "show", "dev", dev) as {
          addr_info: { local: string; prefixlen: number }[];
        }[];
        ok(
          got[0].addr_info.some((a) => `${a.local}/${a.prefixlen}` === addr),
          `${dev} has ${addr}`,
        );
      }
      const status = JSON.parse(
        api.pods.get("default/web")!.annotations["k8s.v1.cni.cncf.io/network-status"],
      );
      assertEquals(status.map((s: { name: string; interface: string }) => [s.name, s.interface]), [
        ["default-net", "eth0"],
        ["default/lan", "net1"],
      ]);

      const check = await runtime("CHECK");
      assertEquals(check.code, 0, check.stdout + check.stderr);

      const del = await runtime("DEL");
      assertEquals(del.code, 0, del.stdout + del.stderr);
      assertEquals(await linkExists(ns.name, "eth0"), false);
      assertEquals(await linkExists(ns.name, "net1"), false);
      assertEquals(leaseFiles(`${r}/leases`), []);
      assertEquals(Array.from(Deno.readDirSync(`${r}/cache/results`)), []);
    } finally {
      for (const br of bridges) await tryRun("ip", "link", "del", br);
    }
  },
});
