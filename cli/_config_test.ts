import assert from "node:assert/strict";
import { CniError } from "../conf/errors.ts";
import { cniPath, INSTALLED_CONF, loadStandaloneConfig } from "./_config.ts";
import { noArgCommand, parseFlags, subcommandHelp, UsageError } from "./_args.ts";
import { table } from "./_output.ts";
import { checkPodName, cniArgsFor, containerIdFor } from "./_pods.ts";
import { interfacesFromResult } from "./_pod_view.ts";

Deno.test("table() pads every column but the last to its widest cell", () => {
  assert.equal(
    table(["POD", "IP"], [["web", "10.0.0.2"], ["database", "-"]]),
    "POD       IP\nweb       10.0.0.2\ndatabase  -\n",
  );
});

Deno.test("parseFlags() rejects an unknown flag with a sentence naming it", () => {
  assert.throws(
    () => parseFlags(["--bogus"], { json: { type: "boolean" } }),
    (e) => e instanceof UsageError && e.message.includes("--bogus") && !e.message.endsWith("."),
  );
  const { values, positionals } = parseFlags(["x", "--json"], { json: { type: "boolean" } });
  assert.deepEqual([values.json, positionals], [true, ["x"]]);
});

Deno.test("loadStandaloneConfig() takes the flag, then PODPLEX_CONFIG, and checks the first plugin", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ppcfg" });
  try {
    const good = `${dir}/a.conflist`;
    await Deno.writeTextFile(
      good,
      JSON.stringify({
        cniVersion: "1.1.0",
        name: "pp",
        plugins: [{ type: "podplex", stateDir: `${dir}/st` }, { type: "tuning" }],
      }),
    );
    const fromEnv = await loadStandaloneConfig(undefined, { PODPLEX_CONFIG: good });
    assert.equal(fromEnv.source, good);
    assert.equal(fromEnv.conf.stateDir, `${dir}/st`);
    assert.equal(fromEnv.conf.name, "pp");
    assert.equal(fromEnv.list.plugins.length, 2);

    const bad = `${dir}/b.conf`;
    await Deno.writeTextFile(
      bad,
      JSON.stringify({ cniVersion: "1.0.0", name: "x", type: "bridge" }),
    );
    await assert.rejects(
      () => loadStandaloneConfig(bad, { PODPLEX_CONFIG: good }),
      (e) => e instanceof CniError && e.code === 7 && e.message.includes(`"${bad}"`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function installed(): boolean {
  try {
    Deno.statSync(INSTALLED_CONF);
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "without a flag, env or installed conf the embedded default is used: no cluster network",
  ignore: installed(), // the installed conf rightly wins on a machine where podplex is installed
  async fn() {
    const cfg = await loadStandaloneConfig(undefined, {});
    assert.equal(cfg.source, "(embedded default)");
    assert.equal(cfg.conf.clusterNetwork, undefined);
    assert.equal(cfg.conf.networksDir, "/etc/cni/podplex/networks.d");
    assert.equal(
      cfg.list.plugins[0].conf.capabilities?.["io.kubernetes.cri.pod-annotations"],
      true,
    );
  },
});

Deno.test("cniPath() falls back to /opt/cni/bin and /usr/lib/cni", () => {
  assert.deepEqual(cniPath({}), ["/opt/cni/bin", "/usr/lib/cni"]);
  assert.deepEqual(cniPath({ CNI_PATH: "/a::/b" }), ["/a", "/b"]);
});

Deno.test("containerIdFor() derives a spec-valid container id from the pod", () => {
  assert.equal(containerIdFor("demo", "web"), "podplex-demo-web");
  assert.match(containerIdFor("ns", "a b/c"), /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/);
  assert.equal(
    cniArgsFor("demo", "web"),
    "IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web",
  );
});

Deno.test("checkPodName() refuses names that cannot be a netns or CNI_ARGS value", () => {
  assert.equal(checkPodName("pod name", "web-1"), "web-1");
  for (const bad of ["", "a/b", "a;b", "-x", "a=b"]) {
    assert.throws(
      () => checkPodName("pod name", bad),
      (e) => e instanceof CniError && e.code === 7,
    );
  }
});

Deno.test("interfacesFromResult() keeps sandbox interfaces with their own addresses", () => {
  const got = interfacesFromResult({
    interfaces: [{ name: "br0" }, { name: "veth1" }, {
      name: "eth0",
      sandbox: "/run/netns/x",
      mac: "aa",
    }],
    ips: [{ address: "10.0.0.2/24", interface: 2 }, { address: "10.0.0.9/24", interface: 0 }],
  });
  assert.deepEqual(got, [{ interface: "eth0", network: "", ips: ["10.0.0.2"], mac: "aa" }]);
});

Deno.test("subcommandHelp() exits 2 without a command, 0 for help, and lets commands through", () => {
  assert.equal(subcommandHelp(undefined, ""), 2);
  for (const h of ["help", "--help", "-h"]) assert.equal(subcommandHelp(h, ""), 0);
  assert.equal(subcommandHelp("list", "unused"), undefined);
});

Deno.test("noArgCommand() prints help, rejects arguments and loads the named conf", async () => {
  assert.equal(await noArgCommand(["--help"], "gc", ""), undefined);
  await assert.rejects(
    noArgCommand(["extra"], "gc", ""),
    (e) => e instanceof UsageError && e.message === `"gc" takes no arguments`,
  );
  const dir = await Deno.makeTempDir({ prefix: "ppnoarg" });
  try {
    const file = `${dir}/p.conflist`;
    const conf = { cniVersion: "1.1.0", name: "p", plugins: [{ type: "podplex" }] };
    await Deno.writeTextFile(file, JSON.stringify(conf));
    const got = await noArgCommand(["--config", file, "--json"], "gc", "");
    assert.equal(got?.cfg.source, file);
    assert.equal(got?.json, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
