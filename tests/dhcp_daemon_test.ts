/**
 * The `dhcp` IPAM through the whole product, as root: the real `bin/podplex` (forwarding to
 * a real `podplex serve` on a socket of this test's), the meta-plugin with a local network
 * of macvlan + dhcp, and a real dnsmasq (tests/dhcp_lan.ts) whose lease file is the judge.
 * The daemon is killed mid-lease and started again: the lease must still be renewed.
 */
import assert from "node:assert/strict";
import { haveDnsmasq, startLan, waitFor } from "./dhcp_lan.ts";
import { ipJson, isRoot, linkExists, tempDir, tempNetns } from "./testutils.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const enc = new TextEncoder();
const dec = new TextDecoder();

interface Daemon {
  log(): string;
  kill(signal?: Deno.Signal): Promise<void>;
}

async function startDaemon(dir: string): Promise<Daemon> {
  const child = new Deno.Command(`${ROOT}/bin/podplex`, {
    args: [
      "serve",
      "--socket",
      `${dir}/pp.sock`,
      "--dhcp-state-dir",
      `${dir}/leases`,
      "--dhcp-timeout",
      "1s",
      "--dhcp-resend-timeout",
      "4s",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const reading = (async () => {
    for await (const chunk of child.stderr) log += dec.decode(chunk);
  })();
  const kill = async (signal: Deno.Signal = "SIGKILL") => {
    try {
      child.kill(signal);
    } catch { /* gone */ }
    await child.status;
    await reading;
  };
  try {
    await waitFor(
      "podplex serve to listen",
      () => log.includes("podplex serve: listening on"),
      10_000,
    );
  } catch (e) {
    await kill();
    throw new Error(`${e}: ${log}`);
  }
  return { log: () => log, kill };
}

async function cni(
  command: string,
  netns: string,
  dir: string,
  stdin: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(`${ROOT}/bin/podplex`, {
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin",
      CNI_COMMAND: command,
      CNI_CONTAINERID: "ppdd1",
      CNI_NETNS: netns,
      CNI_IFNAME: "eth0",
      CNI_PATH: "/usr/lib/cni",
      PODPLEX_SOCKET: `${dir}/pp.sock`,
    },
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(enc.encode(stdin));
  await w.close();
  const out = await child.output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test({
  name: "dhcp through podplex serve: lease kept across a daemon kill, released on DEL",
  ignore: !isRoot || !haveDnsmasq,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using dir = await tempDir("ppdd");
    await using lan = await startLan({ kind: "macvlan", hostNs: "", t1: 3, t2: 6 });
    await using pod = await tempNetns("dp");
    const nets = `${dir.path}/networks.d/default`;
    await Deno.mkdir(nets, { recursive: true });
    await Deno.writeTextFile(
      `${nets}/lan.json`,
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "lan",
        type: "macvlan",
        master: lan.attach,
        ipam: { type: "dhcp", daemonSocketPath: `${dir.path}/dhcp.sock` },
      }),
    );
    const conf = JSON.stringify({
      cniVersion: "1.1.0",
      name: "podplex",
      type: "podplex",
      clusterNetwork: "default/lan",
      networksDir: `${dir.path}/networks.d`,
      stateDir: `${dir.path}/state`,
    });

    // No daemon: ADD fails with 11 naming what is missing, and leaves nothing.
    const none = await cni("ADD", pod.path, dir.path, conf);
    assert.equal(none.code, 1, none.stdout + none.stderr);
    assert.equal(JSON.parse(none.stdout).code, 11, none.stdout);
    assert.match(none.stdout, /needs the podplex daemon/);
    assert.equal(await linkExists(pod.name, "eth0"), false);

    let daemon = await startDaemon(dir.path);
    try {
      const add = await cni("ADD", pod.path, dir.path, conf);
      assert.equal(add.code, 0, add.stdout + add.stderr + daemon.log());
      assert.match(daemon.log(), /ADD ppdd1 eth0: exit 0/, "the daemon served the ADD");
      const res = JSON.parse(add.stdout);
      const mac = res.interfaces[0].mac;
      const lease = lan.leases().find((l) => l.mac === mac);
      assert.ok(lease, `dnsmasq leased to ${mac}: ${JSON.stringify(lan.leases())}`);
      assert.equal(res.ips[0].address, `${lease.ip}/24`);
      assert.deepEqual(res.routes, [{ dst: "0.0.0.0/0", gw: `${lan.prefix}.1` }]);

      // Killed (no chance to tidy up) and started again: the record is resumed and renewed.
      await daemon.kill("SIGKILL");
      daemon = await startDaemon(dir.path);
      assert.match(daemon.log(), /resumed 1 lease/);
      // The new daemon's own log says it renewed; dnsmasq's expiry moved past the first.
      await waitFor(
        "a renewal after the restart",
        () => /renewal of .* done/.test(daemon.log()),
        8000,
      );
      const renewed = lan.leases().find((l) => l.mac === mac);
      assert.ok(renewed && renewed.expiry > lease.expiry, JSON.stringify([lease, renewed]));

      const prev = JSON.stringify({ ...JSON.parse(conf), prevResult: res });
      const check = await cni("CHECK", pod.path, dir.path, prev);
      assert.equal(check.code, 0, check.stdout + check.stderr);
      const del = await cni("DEL", pod.path, dir.path, prev);
      assert.equal(del.code, 0, del.stdout + del.stderr);
      await waitFor("dnsmasq to drop the lease", () => lan.leases().length === 0, 2000);
      assert.deepEqual((await ipJson(pod.name, "link", "show")).map((l) => l.ifname), ["lo"]);
      assert.match(daemon.log(), /released /);
    } finally {
      await daemon.kill();
    }
  },
});
