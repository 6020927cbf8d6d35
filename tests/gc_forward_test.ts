/**
 * GC and STATUS reach the IPAM through the built-in main plugins (bridge, macvlan, ipvlan,
 * vxlan), through the real dispatcher: called as the plugin itself, and through the
 * meta-plugin's GC, which forwards GC to every network it knows. A leaked host-local lease
 * (no state, no pod) is released; a valid attachment's lease is kept.
 */
import assert from "node:assert/strict";
import { isRoot } from "./testutils.ts";
import { callCni, createRig } from "./_rel_fixture.ts";

function lease(dataDir: string, net: string, ip: string, id: string): string {
  Deno.mkdirSync(`${dataDir}/${net}`, { recursive: true });
  const path = `${dataDir}/${net}/${ip}`;
  Deno.writeTextFileSync(path, `${id}\r\neth0`);
  return path;
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

const MAIN_CONFS: Record<string, Record<string, unknown>> = {
  bridge: { type: "bridge", bridge: "pprgcbr0" },
  macvlan: { type: "macvlan", master: "pprgcmaster" },
  ipvlan: { type: "ipvlan", master: "pprgcmaster" },
  vxlan: { type: "vxlan", vni: 4242 },
};

Deno.test("GC of each built-in main plugin releases the IPAM's leases not in the valid list", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "ppr-gc-" });
  try {
    for (const [type, fields] of Object.entries(MAIN_CONFS)) {
      const net = `pprgc-${type}`;
      const stale = lease(dir, net, "10.202.70.5", "pprstale");
      const kept = lease(dir, net, "10.202.70.6", "pprkeep");
      const conf = JSON.stringify({
        cniVersion: "1.1.0",
        name: net,
        ...fields,
        ipam: { type: "host-local", subnet: "10.202.70.0/24", dataDir: dir },
        "cni.dev/valid-attachments": [{ containerID: "pprkeep", ifname: "eth0" }],
      });
      const out = await callCni({ CNI_COMMAND: "GC", CNI_PATH: "/usr/lib/cni" }, conf);
      assert.equal(out.code, 0, `${type}: ${out.stdout}`);
      assert.equal(exists(stale), false, `${type}: the stale lease must go`);
      assert.equal(exists(kept), true, `${type}: the valid lease stays`);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("STATUS of each built-in main plugin is its IPAM's: 50 when host-local cannot write", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "ppr-st-" });
  try {
    Deno.writeTextFileSync(`${dir}/file`, "");
    for (const [type, fields] of Object.entries(MAIN_CONFS)) {
      const conf = (dataDir: string) =>
        JSON.stringify({
          cniVersion: "1.1.0",
          name: `pprst-${type}`,
          ...fields,
          ipam: { type: "host-local", subnet: "10.202.71.0/24", dataDir },
        });
      const bad = await callCni({ CNI_COMMAND: "STATUS" }, conf(`${dir}/file/leases`));
      assert.equal(bad.json.code, 50, `${type}: ${bad.stdout}`);
      assert.match(String(bad.json.msg), /host-local/);
      const good = await callCni({ CNI_COMMAND: "STATUS" }, conf(`${dir}/leases`));
      assert.equal(good.code, 0, `${type}: ${good.stdout}`);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test({
  name: "the meta-plugin's GC releases a leaked lease through the bridge, keeps the valid pod's",
  ignore: !isRoot,
  async fn() {
    await using rig = await createRig("gc");
    // GC is a 1.1 verb: libcni (and podplex's chain runner) skips it for older confs.
    rig.bridgeNetwork("net-a", 72, { cniVersion: "1.1.0" });
    const conf = rig.podplexConf({ clusterNetwork: "default/net-a" });
    const add = await callCni(rig.env("ADD", "pprgcpod"), conf);
    assert.equal(add.code, 0, add.stdout);
    // A lease with no state and no pod: what a crashed ADD of another sandbox can leave.
    const leaked = lease(rig.dataDir, "net-a", "10.202.72.200", "pprgcleaked");
    const gcConf = JSON.stringify({
      ...JSON.parse(conf),
      "cni.dev/valid-attachments": [{ containerID: "pprgcpod", ifname: "eth0" }],
    });
    const gc = await callCni({ CNI_COMMAND: "GC", CNI_PATH: "/usr/lib/cni" }, gcConf);
    assert.equal(gc.code, 0, gc.stdout);
    assert.equal(exists(leaked), false, "the leaked lease must go");
    assert.deepEqual(
      (await rig.leftovers()).filter((l) => l.startsWith("lease")),
      ["lease net-a/10.202.72.2"],
    );
    assert.equal((await callCni(rig.env("DEL", "pprgcpod"), conf)).code, 0);
    assert.deepEqual(await rig.leftovers(), []);
  },
});
