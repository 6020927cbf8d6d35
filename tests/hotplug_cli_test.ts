/**
 * `podplex pod attach` / `pod detach` end to end: bin/podplex run as a subprocess against a
 * temp podplex conf (ppd bridges in 10.163.0.0/16, leases and state in a temp dir), the
 * kernel checked with `ip -j`, `pod list --json` read back. Needs `deno task build`.
 */
import assert from "node:assert/strict";
import { isRoot, tryRun } from "./testutils.ts";
import { addrsOf, hotplugNetworks, leases, podLinks, ppdName, stateNames } from "./_hotplug_rig.ts";

const BIN = new URL("../bin/podplex", import.meta.url).pathname;
const dec = new TextDecoder();

async function podplex(...args: string[]) {
  const env = { CNI_PATH: "/usr/lib/cni", PODPLEX_CONFIG: "" };
  const o = await new Deno.Command(BIN, { args, env, stdout: "piped", stderr: "piped" }).output();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

async function ok(...args: string[]): Promise<string> {
  const o = await podplex(...args);
  assert.equal(o.code, 0, `podplex ${args.join(" ")} failed (${o.code}): ${o.stderr}`);
  return o.stdout;
}

Deno.test({
  name: "pod attach plugs networks into a running standalone pod and pod detach takes them out",
  ignore: !isRoot,
  async fn() {
    await using f = await hotplugNetworks(4, 50);
    const conf = `${f.dir}/podplex.conflist`;
    await Deno.writeTextFile(
      conf,
      JSON.stringify({
        cniVersion: "1.1.0",
        name: "podplex",
        plugins: [{
          type: "podplex",
          clusterNetwork: "default/net-a",
          networksDir: f.networksDir,
          stateDir: f.stateDir,
          capabilities: { "io.kubernetes.cri.pod-annotations": true },
        }],
      }),
    );
    const pod = ppdName("p");
    try {
      await ok("pod", "up", pod, "--config", conf, "--networks", "net-b");
      assert.deepEqual(await podLinks(pod), ["eth0", "net1"]);

      const attached = JSON.parse(
        await ok(
          "pod",
          "attach",
          pod,
          "--config",
          conf,
          "--networks",
          "net-c@data1,net-d",
          "--json",
        ),
      );
      assert.deepEqual(attached.changes.map((c: { interface: string }) => c.interface), [
        "data1",
        "net2",
      ]);
      assert.deepEqual(await podLinks(pod), ["data1", "eth0", "net1", "net2"]);
      assert.deepEqual(await addrsOf(pod, "data1"), [`${f.prefix(2)}.2/24`]);
      const listed = JSON.parse(await ok("pod", "list", "--config", conf, "--json"));
      const ifaces = listed[0].interfaces.map((i: { interface: string; network: string }) =>
        `${i.network}@${i.interface}`
      );
      assert.deepEqual(ifaces, [
        "default/net-a@eth0",
        "default/net-b@net1",
        "default/net-c@data1",
        "default/net-d@net2",
      ]);

      // net-b was asked for without an interface: it can be detached by name alone (#63).
      await ok("pod", "detach", pod, "--config", conf, "--networks", "net-b");
      await ok("pod", "detach", pod, "--config", conf, "--networks", "net-c@data1");
      assert.deepEqual(await podLinks(pod), ["eth0", "net2"]);
      assert.deepEqual(leases(f.dataDir).map((l) => l.split("/")[0]), ["net-a", "net-d"]);

      // Detaching what the pod does not have, or the cluster network: refused, nothing changes.
      const missing = await podplex("pod", "detach", pod, "--config", conf, "--networks", "net-b");
      assert.notEqual(missing.code, 0);
      assert.match(missing.stderr, /no network "default\/net-b"/);
      const cluster = await podplex("pod", "detach", pod, "--config", conf, "--networks", "net-a");
      assert.notEqual(cluster.code, 0);
      // An unknown network: exit 1 naming it, the pod unchanged.
      const unknown = await podplex("pod", "attach", pod, "--config", conf, "--networks", "nope");
      assert.equal(unknown.code, 1, unknown.stderr);
      assert.match(unknown.stderr, /default\/nope/);
      assert.deepEqual(await podLinks(pod), ["eth0", "net2"]);

      // The net1 name freed by net-b is reused; the record remembers it all for pod down.
      await ok("pod", "attach", pod, "--config", conf, "--networks", "net-b");
      assert.deepEqual(await podLinks(pod), ["eth0", "net1", "net2"]);
      await ok("pod", "down", pod, "--config", conf);
      assert.deepEqual(leases(f.dataDir), []);
      assert.deepEqual(stateNames(f.stateDir), []);
    } finally {
      await tryRun("ip", "netns", "delete", pod);
    }
  },
});
