/**
 * What a fresh machine or a node meets: the node artifact (`deno task build` = `deno task
 * artifact`, dist/node/) run with an empty Deno cache and home, from `/`, with no variable of
 * the checkout in its environment. The README's first command (the demo) starts with
 * `podplex net validate` of YAML definitions; the artifact must not resolve anything from a
 * registry or a Deno cache to do it (it once imported `npm:yaml` at run time).
 */
import { deepStrictEqual as assertEquals, match, ok } from "node:assert/strict";
import { tempDir } from "./testutils.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const LAUNCHER = `${ROOT}/bin/podplex`;
const ARTIFACT = `${ROOT}/dist/node`;

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `exe args` from `/` with only PATH and an empty DENO_DIR and HOME under `scratch`. */
async function fresh(exe: string, args: string[], scratch: string): Promise<Out> {
  const dd = await Deno.makeTempDir({ dir: scratch, prefix: "deno-dir" });
  const home = await Deno.makeTempDir({ dir: scratch, prefix: "home" });
  const out = await new Deno.Command(exe, {
    args,
    cwd: "/",
    clearEnv: true,
    env: {
      PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
      DENO_DIR: dd,
      HOME: home,
      PODPLEX_SOCKET: "/nonexistent",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const NAD = (name: string, config: string) =>
  `apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: ${name}
  namespace: default
spec:
  config: |
    ${config}
`;

/** A podplex conf over `<dir>/nets` holding YAML NADs, as the lead's before-stop hook makes. */
async function yamlNetworks(dir: string, nads: Record<string, string>): Promise<string> {
  await Deno.mkdir(`${dir}/nets/default`, { recursive: true });
  for (const [name, text] of Object.entries(nads)) {
    await Deno.writeTextFile(`${dir}/nets/default/${name}.yaml`, text);
  }
  const conf = `${dir}/pp.conf`;
  await Deno.writeTextFile(
    conf,
    JSON.stringify({
      cniVersion: "1.1.0",
      name: "podplex",
      type: "podplex",
      networksDir: `${dir}/nets`,
      stateDir: `${dir}/state`,
    }),
  );
  return conf;
}

const BRIDGE_CONF =
  `{"cniVersion":"1.0.0","type":"bridge","bridge":"ppnfresh0","ipam":{"type":"host-local","subnet":"10.201.254.0/24"}}`;

Deno.test("bin/podplex net validate reads a YAML NAD with an empty DENO_DIR and HOME", async () => {
  await using tmp = await tempDir("ppn-fresh");
  const conf = await yamlNetworks(tmp.path, { y: NAD("y", BRIDGE_CONF) });
  const out = await fresh(LAUNCHER, ["net", "validate", "--config", conf], tmp.path);
  assertEquals(out.code, 0, out.stderr);
  match(out.stdout, /1 file\(s\) in .* checked, 0 error\(s\)/);
});

Deno.test("net validate from a fresh cache still reports a bad YAML NAD by name", async () => {
  await using tmp = await tempDir("ppn-fresh");
  const conf = await yamlNetworks(tmp.path, {
    good: NAD("good", BRIDGE_CONF),
    bad: NAD("bad", `{"cniVersion":"1.0.0","type":"bridge","bridge":7}`),
  });
  const out = await fresh(LAUNCHER, ["net", "validate", "--config", conf], tmp.path);
  ok(out.code !== 0, "a NAD with a numeric bridge name must fail validation");
  match(out.stdout + out.stderr, /bad\.yaml/);
  match(out.stdout + out.stderr, /2 file\(s\) in .* checked, 1 error\(s\)/);
});

Deno.test("the demo's first step (net validate, net list of node A) runs from a fresh cache", async () => {
  await using tmp = await tempDir("ppn-fresh");
  const work = `${tmp.path}/demo`;
  await Deno.mkdir(work);
  const cp = await new Deno.Command("cp", {
    args: ["-r", `${ROOT}/examples/demo/node-a`, `${work}/`],
  }).output();
  ok(cp.success);
  for await (const e of Deno.readDir(`${work}/node-a/networks.d/demo`)) {
    const path = `${work}/node-a/networks.d/demo/${e.name}`;
    await Deno.writeTextFile(path, (await Deno.readTextFile(path)).replaceAll("@DEMO_DIR@", work));
  }
  const confPath = `${work}/node-a/podplex.conflist`;
  await Deno.writeTextFile(
    confPath,
    (await Deno.readTextFile(confPath)).replaceAll("@DEMO_DIR@", work),
  );
  const validate = await fresh(LAUNCHER, ["net", "validate", "--config", confPath], tmp.path);
  assertEquals(validate.code, 0, validate.stderr);
  match(validate.stdout, /0 error\(s\)/);
  const list = await fresh(LAUNCHER, ["net", "list", "--config", confPath], tmp.path);
  assertEquals(list.code, 0, list.stderr);
  match(list.stdout, /demo\/lan/);
  match(list.stdout, /demo\/cluster \(cluster\)/);
});

Deno.test("the artifact runs from a copy outside the checkout, naming nothing of it", async () => {
  await using tmp = await tempDir("ppn-fresh");
  const copy = `${tmp.path}/bin`;
  const cp = await new Deno.Command("cp", { args: ["-a", ARTIFACT, copy] }).output();
  ok(cp.success, "dist/node must exist: run `deno task build`");
  const payloads = Array.from(Deno.readDirSync(`${copy}/podplex.d`), (e) => e.name);
  assertEquals(payloads.length, 1);
  const payload = `${copy}/podplex.d/${payloads[0]}`;
  for (const f of ["deno", "main.js", "libnl-3.so.200", "libnl-route-3.so.200", "podplex-client"]) {
    ok(Deno.statSync(`${payload}/${f}`).isFile, `the artifact lacks ${f}`);
  }
  for (const e of Deno.readDirSync(payload)) {
    if (!e.name.endsWith(".js")) continue;
    const js = Deno.readTextFileSync(`${payload}/${e.name}`);
    ok(!/["'](npm|jsr|https?):/.test(js), `${e.name} imports a package at run time`);
    ok(!js.includes(ROOT), `${e.name} names the checkout`);
  }
  const conf = await yamlNetworks(tmp.path, { y: NAD("y", BRIDGE_CONF) });
  const out = await fresh(`${copy}/podplex`, ["net", "validate", "--config", conf], tmp.path);
  assertEquals(out.code, 0, out.stderr);
  match(out.stdout, /0 error\(s\)/);
});
