/**
 * `readinessIndicatorFile` through the real launcher (the node artifact), as a runtime calls
 * it: ADD waits for the file and succeeds once it appears; DEL does not wait for it. The
 * code 11 answer when it never appears is meta/readiness_test.ts's (with a short budget:
 * ADD's is Multus's 45 s).
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { isRoot, tempDir, tempNetns } from "./testutils.ts";

const LAUNCHER = new URL("../bin/podplex", import.meta.url).pathname;

async function cni(command: string, netns: string, conf: string) {
  const child = new Deno.Command(LAUNCHER, {
    env: {
      CNI_COMMAND: command,
      CNI_CONTAINERID: "ppnready1",
      CNI_NETNS: netns,
      CNI_IFNAME: "eth0",
      CNI_PATH: "/usr/lib/cni",
      PODPLEX_SOCKET: "/nonexistent",
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(conf));
  await w.close();
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test({
  name: "ADD waits for the readiness indicator file and succeeds when it appears; DEL never waits",
  ignore: !isRoot,
  async fn() {
    await using tmp = await tempDir("ppn-ready");
    await using ns = await tempNetns("ppn");
    const ready = `${tmp.path}/default-net-ready`;
    const conf = JSON.stringify({
      cniVersion: "1.0.0",
      name: "podplex",
      type: "podplex",
      clusterNetwork: { cniVersion: "1.0.0", name: "lo", type: "loopback" },
      stateDir: `${tmp.path}/state`,
      networksDir: `${tmp.path}/nets`,
      readinessIndicatorFile: ready,
    });
    const add = cni("ADD", ns.path, conf);
    let settled = false;
    add.finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 700));
    ok(!settled, "ADD must still be waiting for the readiness indicator file");
    await Deno.writeTextFile(ready, "");
    const res = await add;
    assertEquals(res.code, 0, res.stdout + res.stderr);
    assertEquals(JSON.parse(res.stdout).ips[0].address, "127.0.0.1/8");

    await Deno.remove(ready);
    // A DEL that waited would answer code 11 after the 45 s budget.
    const del = await cni("DEL", ns.path, conf);
    assertEquals(del.code, 0, del.stdout + del.stderr);
  },
});
