/**
 * The standalone subcommands end to end: `bin/podplex pod|net|status|gc|graph|install` run
 * as subprocesses against a temp podplex conf (stateDir, networksDir, leases in a temp dir),
 * their --json output parsed, the kernel checked with `ip -j`, everything removed after.
 *
 * The pods' bridges live in the host netns (as on a real node) under pp names and are
 * deleted in the fixture's disposer; pod netns are pp-named and removed by `pod down` (or by
 * the disposer when a test fails first).
 */
import assert from "node:assert/strict";
import { ipJson, isRoot, linkExists, ppName, tryRun } from "./testutils.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

const ROOT = new URL("..", import.meta.url).pathname;
const BIN = `${ROOT}bin/podplex`;
const dec = new TextDecoder();

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs bin/podplex with args (CNI_PATH to the reference plugins, no PODPLEX_CONFIG). */
async function podplex(...args: string[]): Promise<Out> {
  const env = { CNI_PATH: "/usr/lib/cni", PODPLEX_CONFIG: "" };
  const o = await new Deno.Command(BIN, { args, env, stdout: "piped", stderr: "piped" }).output();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

/** Runs and requires exit 0; returns stdout. */
async function ok(...args: string[]): Promise<string> {
  const o = await podplex(...args);
  assert.equal(o.code, 0, `podplex ${args.join(" ")} failed (${o.code}): ${o.stderr}`);
  return o.stdout;
}

interface Fixture extends AsyncDisposable {
  dir: string;
  conf: string;
  networksDir: string;
  stateDir: string;
  leases: string;
  bridges: string[];
  pods: string[];
}

/** A temp conf: cluster network default/lan (bridge), and default/side (another bridge). */
async function fixture(): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "ppstandalone" });
  const networksDir = `${dir}/networks.d`;
  const stateDir = `${dir}/state`;
  const leases = `${dir}/leases`;
  const bridges = [ppName("lan"), ppName("side")];
  const pods: string[] = [];
  await Deno.mkdir(`${networksDir}/default`, { recursive: true });
  const bridgeConf = (name: string, br: string, subnet: string) =>
    JSON.stringify({
      cniVersion: "1.0.0",
      name,
      type: "bridge",
      bridge: br,
      ipam: { type: "host-local", subnet, dataDir: leases },
    });
  await Deno.writeTextFile(
    `${networksDir}/default/lan.json`,
    bridgeConf("lan", bridges[0], "10.123.1.0/24"),
  );
  await Deno.writeTextFile(
    `${networksDir}/default/side.json`,
    bridgeConf("side", bridges[1], "10.123.2.0/24"),
  );
  const conf = `${dir}/podplex.conflist`;
  await Deno.writeTextFile(
    conf,
    JSON.stringify({
      cniVersion: "1.1.0",
      name: "podplex",
      plugins: [{
        type: "podplex",
        clusterNetwork: "default/lan",
        networksDir,
        stateDir,
        capabilities: { "io.kubernetes.cri.pod-annotations": true },
      }],
    }),
  );
  return {
    dir,
    conf,
    networksDir,
    stateDir,
    leases,
    bridges,
    pods,
    async [Symbol.asyncDispose]() {
      for (const p of pods) await tryRun("ip", "netns", "delete", p);
      for (const br of bridges) await tryRun("ip", "link", "delete", br);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

function files(dir: string, filter: RegExp = /./): string[] {
  try {
    return Array.from(Deno.readDirSync(dir), (e) => e.name).filter((n) => filter.test(n)).sort();
  } catch {
    return [];
  }
}

function leaseFiles(f: Fixture): string[] {
  return ["lan", "side"].flatMap((n) => files(`${f.leases}/${n}`, /^[0-9.]+$/));
}

async function netnsNames(): Promise<string[]> {
  return (await ipJson(undefined, "netns", "list")).map((n) => String(n.name));
}

async function inet(ns: string, dev: string): Promise<string[]> {
  const [link]: Any[] = await ipJson(ns, "addr", "show", "dev", dev);
  return (link?.addr_info ?? []).filter((a: Any) => a.family === "inet").map((a: Any) =>
    `${a.local}/${a.prefixlen}`
  );
}

Deno.test({
  name: "pod up, list, check, exec and down take a pod through its life and leave nothing",
  ignore: !isRoot,
  async fn() {
    await using f = await fixture();
    const pod = ppName("pod");
    f.pods.push(pod);
    const up = JSON.parse(
      await ok("pod", "up", pod, "--config", f.conf, "--networks", "side", "--json"),
    );
    assert.equal(up.name, pod);
    assert.equal(up.namespace, "default");
    assert.equal(up.containerId, `podplex-default-${pod}`);
    assert.equal(up.netns, `/run/netns/${pod}`);
    assert.deepEqual(up.interfaces.map((i: Any) => [i.interface, i.network]), [
      ["eth0", "default/lan"],
      ["net1", "default/side"],
    ]);
    assert.ok((await netnsNames()).includes(pod));
    assert.deepEqual(await inet(pod, "eth0"), [`${up.interfaces[0].ips[0]}/24`]);
    assert.deepEqual(await inet(pod, "net1"), [`${up.interfaces[1].ips[0]}/24`]);
    assert.match(up.interfaces[1].ips[0], /^10\.123\.2\./);
    const [lo]: Any[] = await ipJson(pod, "link", "show", "dev", "lo");
    assert.ok(lo.flags.includes("UP"), "the pod's loopback is up");
    assert.equal(leaseFiles(f).length, 2);

    const list = JSON.parse(await ok("pod", "list", "--config", f.conf, "--json"));
    assert.equal(list.length, 1);
    assert.equal(list[0].health, "ok");
    assert.equal(list[0].interfaces.length, 2);
    await ok("pod", "check", pod, "--config", f.conf);

    const shown = await ok("pod", "exec", pod, "--config", f.conf, "--", "ip", "-j", "addr");
    assert.ok(shown.includes(up.interfaces[1].ips[0]), "exec runs inside the pod's netns");

    // A second 'pod up' of the same pod is refused and does not disturb the first.
    const again = await podplex("pod", "up", pod, "--config", f.conf);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already up/);
    assert.ok((await netnsNames()).includes(pod));
    // The same name in another namespace may not take over the first pod's netns.
    const other = await podplex(
      "pod",
      "up",
      pod,
      "--namespace",
      "other",
      "--config",
      f.conf,
      "--netns",
      up.netns,
    );
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /belongs to pod "default\//);
    assert.deepEqual(await inet(pod, "eth0"), [`${up.interfaces[0].ips[0]}/24`]);

    assert.match(await ok("pod", "down", pod, "--config", f.conf), /is down/);
    assert.ok(!(await netnsNames()).includes(pod), "pod down removes the netns it made");
    assert.deepEqual(leaseFiles(f), []);
    assert.deepEqual(files(f.stateDir, /\.json$/), []);
    assert.deepEqual(files(`${f.stateDir}/standalone`), []);
    const down2 = await podplex("pod", "down", pod, "--config", f.conf);
    assert.equal(down2.code, 1);
    assert.match(down2.stderr, /is not up/);
  },
});

Deno.test({
  name: "pod up with a missing network names it and the places searched and leaves nothing",
  ignore: !isRoot,
  async fn() {
    await using f = await fixture();
    const pod = ppName("pod");
    f.pods.push(pod);
    const o = await podplex("pod", "up", pod, "--config", f.conf, "--networks", "side,nope");
    assert.equal(o.code, 1);
    assert.match(o.stderr, /Network "default\/nope" not found/);
    assert.ok(o.stderr.includes(`${f.networksDir}/default/nope.yaml`), o.stderr);
    assert.ok(o.stderr.includes(`${f.networksDir}/default/nope.conflist`), o.stderr);
    assert.equal(o.stdout, "");
    assert.ok(!(await netnsNames()).includes(pod), "no netns left");
    for (const br of f.bridges) assert.ok(!(await linkExists(undefined, br)), `no ${br} left`);
    assert.deepEqual(leaseFiles(f), []);
    assert.deepEqual(files(f.stateDir, /\.json$/), []);
    assert.deepEqual(files(`${f.stateDir}/standalone`), []);
  },
});

Deno.test({
  name: "pod up rolls back and removes its netns when a delegate fails after the first attachment",
  ignore: !isRoot,
  async fn() {
    await using f = await fixture();
    // "side" now fails at ADD time (a host-local range outside its subnet), after eth0 is up.
    await Deno.writeTextFile(
      `${f.networksDir}/default/side.json`,
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "side",
        type: "bridge",
        bridge: f.bridges[1],
        ipam: { type: "host-local", subnet: "10.123.2.0/24", rangeStart: "10.9.9.9" },
      }),
    );
    const pod = ppName("pod");
    f.pods.push(pod);
    const o = await podplex("pod", "up", pod, "--config", f.conf, "--networks", "side");
    assert.equal(o.code, 1, o.stderr);
    assert.match(o.stderr, /Network "default\/side" \(interface "net1"\) failed/);
    assert.ok(!(await netnsNames()).includes(pod));
    assert.deepEqual(leaseFiles(f), []);
    assert.deepEqual(files(f.stateDir, /\.json$/), []);
    const [lan]: Any[] = await ipJson(undefined, "link", "show", "master", f.bridges[0]);
    assert.equal(lan, undefined, "no veth is left on the cluster bridge");
  },
});

Deno.test({
  name: "status counts pods and leases, and gc releases pods whose netns is gone",
  ignore: !isRoot,
  async fn() {
    await using f = await fixture();
    const [p1, p2] = [ppName("pod"), ppName("pod")];
    f.pods.push(p1, p2);
    await ok("pod", "up", p1, "--config", f.conf, "--json");
    await ok("pod", "up", p2, "--config", f.conf, "--networks", "side", "--json");
    const st = JSON.parse(await ok("status", "--config", f.conf, "--json"));
    assert.equal(st.ready, true);
    assert.equal(st.pods, 2);
    assert.equal(st.attachments, 3);
    const byNet = Object.fromEntries(st.networks.map((n: Any) => [n.network, n]));
    assert.equal(byNet["default/lan"].leases, 2);
    assert.equal(byNet["default/side"].leases, 1);

    const dot = await ok("graph", "--config", f.conf, "--format", "dot");
    assert.match(dot, /^graph podplex \{/);
    assert.ok(dot.includes(`pod default/${p2}`));
    assert.match(await ok("graph", "--config", f.conf), /^flowchart LR/);

    await tryRun("ip", "netns", "delete", p2); // the pod vanished without a DEL
    const gc = JSON.parse(await ok("gc", "--config", f.conf, "--json"));
    assert.deepEqual(gc.removed, [{ containerID: `podplex-default-${p2}`, ifname: "eth0" }]);
    assert.equal(gc.kept.length, 1);
    assert.equal(leaseFiles(f).length, 1, "only p1's lease is left");
    const list = JSON.parse(await ok("pod", "list", "--config", f.conf, "--json"));
    assert.deepEqual(list.map((p: Any) => p.name), [p1]);
    await ok("pod", "down", p1, "--config", f.conf);
    assert.deepEqual(leaseFiles(f), []);
  },
});

Deno.test({
  name: "net list, show and validate report networks, sources and every error with its path",
  ignore: !isRoot,
  async fn() {
    await using f = await fixture();
    const list = JSON.parse(await ok("net", "list", "--config", f.conf, "--json"));
    assert.deepEqual(list.map((n: Any) => [n.name, n.cluster, n.types]), [
      ["default/lan", true, ["bridge(host-local)"]],
      ["default/side", false, ["bridge(host-local)"]],
    ]);
    const show = JSON.parse(await ok("net", "show", "default/side", "--config", f.conf, "--json"));
    assert.equal(show.source, `${f.networksDir}/default/side.json`);
    assert.equal(show.conf.bridge, f.bridges[1]);
    assert.match(await ok("net", "validate", "--config", f.conf), /2 file\(s\).*0 error/);

    const bad = `${f.networksDir}/default/bad.yaml`;
    await Deno.writeTextFile(
      bad,
      [
        "apiVersion: k8s.cni.cncf.io/v1",
        "kind: NetworkAttachmentDefinition",
        "metadata: {name: other, namespace: default}",
        "spec:",
        '  config: \'{"cniVersion":"1.0.0","plugins":[{"type":"bridge","mtu":70000},' +
        '{"type":"macvlan","mode":"sideways"}]}\'',
      ].join("\n"),
    );
    const o = await podplex("net", "validate", "--config", f.conf, "--json");
    assert.equal(o.code, 1);
    const { problems } = JSON.parse(o.stdout);
    assert.deepEqual(problems.map((p: Any) => [p.file, p.path]), [
      [bad, "metadata.name"],
      [bad, "spec.config.plugins[0]"],
      [bad, "spec.config.plugins[1]"],
    ]);
    assert.match(problems[1].message, /mtu/);
    assert.match(problems[2].message, /mode/);
  },
});

Deno.test("every standalone command has help and rejects an unknown flag by name", async () => {
  for (const cmd of ["pod", "net", "status", "gc", "graph", "install"]) {
    const help = await podplex(cmd, "--help");
    assert.equal(help.code, 0, `${cmd} --help: ${help.stderr}`);
    assert.match(help.stdout, new RegExp(`usage: podplex ${cmd}`));
  }
  for (const sub of ["up", "down", "check", "list", "exec"]) {
    const help = await podplex("pod", sub, "--help");
    assert.equal(help.code, 0, `pod ${sub} --help: ${help.stderr}`);
    assert.match(help.stdout, /usage: podplex pod/);
  }
  const o = await podplex("pod", "up", "ppx", "--bogus");
  assert.equal(o.code, 2);
  assert.match(o.stderr, /--bogus/);
  const s = await podplex("status", "--frobnicate");
  assert.equal(s.code, 2);
  assert.match(s.stderr, /--frobnicate/);
  const g = await podplex("graph", "--format", "png");
  assert.equal(g.code, 2);
  assert.match(g.stderr, /"png"/);
});

Deno.test({
  name: "deno task pod up and down bring a local pod up and down from the checkout",
  ignore: !isRoot,
  async fn() {
    await using f = await fixture();
    const pod = ppName("task");
    f.pods.push(pod);
    const task = async (...args: string[]) => {
      const o = await new Deno.Command(Deno.execPath(), {
        args: ["task", "--quiet", "--config", `${ROOT}deno.json`, "pod", ...args],
        env: { CNI_PATH: "/usr/lib/cni", PODPLEX_CONFIG: f.conf },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(o.code, 0, `deno task pod ${args.join(" ")}: ${dec.decode(o.stderr)}`);
      return dec.decode(o.stdout);
    };
    const up = JSON.parse(await task("up", pod, "--networks", "side", "--json"));
    assert.deepEqual(up.interfaces.map((i: Any) => i.interface), ["eth0", "net1"]);
    assert.deepEqual(await inet(pod, "net1"), [`${up.interfaces[1].ips[0]}/24`]);
    assert.equal(leaseFiles(f).length, 2);
    await task("down", pod);
    assert.ok(!(await netnsNames()).includes(pod), "pod down removes the pod's netns");
    assert.deepEqual(leaseFiles(f), [], "pod down releases the leases");
  },
});
