/**
 * podplex killed in the middle of an ADD (SIGKILL, as an OOM kill or a node reboot would):
 * the runtime then calls DEL, which must release what the ADD had made so far. The ADD is
 * held in its second network by a plugin script that blocks, so the kill lands at a known
 * point: after the first network's veth and lease exist.
 */
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import {
  isRoot,
  leaseFiles,
  linkExists,
  ppName,
  stateFiles,
  tempNetns,
  tryRun,
} from "./testutils.ts";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const enc = new TextEncoder();

/** A CNI plugin that, on ADD, signals `ready` and then waits for `release`; else succeeds. */
function holdPlugin(ready: string, release: string): string {
  return `#!/bin/sh
if [ "$CNI_COMMAND" = ADD ]; then
  touch "${ready}"
  while [ ! -e "${release}" ]; do sleep 0.05; done
  exit 1
fi
[ "$CNI_COMMAND" = VERSION ] && echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}'
exit 0
`;
}

function cni(command: string, netns: string, path: string): Deno.ChildProcess {
  return new Deno.Command(`${ROOT}/bin/podplex`, {
    env: {
      CNI_COMMAND: command,
      CNI_CONTAINERID: "ppcrash1",
      CNI_NETNS: netns,
      CNI_IFNAME: "eth0",
      CNI_PATH: path,
      // Always the per-call process (the one this test kills), even if a podplex serve runs.
      PODPLEX_SOCKET: "/nonexistent/podplex.sock",
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function run(command: string, conf: string, netns: string, path: string) {
  const child = cni(command, netns, path);
  const w = child.stdin.getWriter();
  await w.write(enc.encode(conf));
  await w.close();
  return await child.output();
}

Deno.test({
  name: "a DEL after podplex was killed mid-ADD releases the links and leases already made",
  ignore: !isRoot,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "ppcrash" });
    const bridge = ppName("cb");
    const ready = `${dir}/ready`;
    const release = `${dir}/release`;
    let child: Deno.ChildProcess | undefined;
    try {
      const bin = `${dir}/bin`;
      await Deno.mkdir(`${dir}/nets/default`, { recursive: true });
      await Deno.mkdir(bin);
      await Deno.writeTextFile(`${bin}/pphold`, holdPlugin(ready, release), { mode: 0o755 });
      await Deno.writeTextFile(
        `${dir}/nets/default/first.json`,
        JSON.stringify({
          cniVersion: "1.0.0",
          name: "first",
          type: "bridge",
          bridge,
          ipam: { type: "host-local", subnet: "10.78.0.0/24", dataDir: `${dir}/leases` },
        }),
      );
      await Deno.writeTextFile(
        `${dir}/nets/default/held.json`,
        JSON.stringify({ cniVersion: "1.0.0", name: "held", type: "pphold" }),
      );
      // The networks come from the pod's annotations, which this DEL does not get (podman
      // never sends them): only what ADD wrote down can tell DEL about them.
      const base = {
        cniVersion: "1.0.0",
        name: "podplex",
        type: "podplex",
        networksDir: `${dir}/nets`,
        stateDir: `${dir}/state`,
      };
      const conf = JSON.stringify({
        ...base,
        runtimeConfig: {
          "io.kubernetes.cri.pod-annotations": {
            "k8s.v1.cni.cncf.io/networks": "default/first, default/held",
          },
        },
      });
      const delConf = JSON.stringify(base);
      await using ns = await tempNetns();
      const path = `${bin}:/usr/lib/cni`;

      child = cni("ADD", ns.path, path);
      const w = child.stdin.getWriter();
      await w.write(enc.encode(conf));
      await w.close();
      for (let i = 0; i < 300; i++) {
        if (await Deno.stat(ready).then(() => true, () => false)) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(await linkExists(ns.name, "net1"), "the first network was attached");
      assert.equal(leaseFiles(`${dir}/leases`).length, 1);
      // The launcher execs deno, so the child's pid is podplex's.
      child.kill("SIGKILL");
      await child.status;
      child = undefined;
      await Deno.writeTextFile(release, "");

      const del = await run("DEL", delConf, ns.path, path);
      assert.equal(del.code, 0, new TextDecoder().decode(del.stdout));
      assert.equal(await linkExists(ns.name, "net1"), false);
      assert.deepEqual(leaseFiles(`${dir}/leases`), []);
      assert.deepEqual(stateFiles(`${dir}/state`), []);
    } finally {
      if (child) {
        child.kill("SIGKILL");
        await child.status;
      }
      await Deno.writeTextFile(release, "").catch(() => {});
      await tryRun("ip", "link", "del", bridge);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
