/**
 * The built-in `dhcp` IPAM against a real dnsmasq (tests/dhcp_lan.ts), as root: pods attached
 * by the built-in macvlan and bridge (host side in a throwaway netns), the lease keeper
 * running in this process on a socket of its own. What dnsmasq's lease file says is the
 * judge: the address it leased to the pod's MAC, its expiry moving on renewal, the lease
 * gone right after DEL.
 */
import assert from "node:assert/strict";
import { CniError } from "../conf/errors.ts";
import { builtinPlugin } from "../delegates/runner/builtin.ts";
import { createRegistry } from "../delegates/runner/registry.ts";
import { makeBridge } from "../delegates/main/bridge.ts";
import { makeMacvlan } from "../delegates/main/macvlan.ts";
import { dhcpIpam } from "../delegates/ipam/dhcp/dhcp.ts";
import { type RunningKeeper, startDhcp } from "../controllers/dhcp/keeper_server.ts";
import { systemClock } from "../controllers/controller.ts";
import { ControllerMetrics } from "../controllers/metrics.ts";
import { parseKeeperFlags } from "../cli/serve/dhcp_flags.ts";
import type { PluginRequest } from "../delegates/types.ts";
import type { CniResult } from "../conf/types.ts";
import { type DhcpLan, haveDnsmasq, startLan, waitFor } from "./dhcp_lan.ts";
import { ipJson, isRoot, linkExists, tempDir, tempNetns, type TestNetns } from "./testutils.ts";

const opts = { ignore: !isRoot || !haveDnsmasq, sanitizeResources: false, sanitizeOps: false };
const enc = new TextEncoder();

/**
 * The keeper of this process, on its own socket and state dir. Its timeouts leave room for
 * a loaded machine (other suites on the same 2 cores): a lease is usually had in ~20 ms.
 */
async function keeper(
  dir: string,
  timeouts = ["--dhcp-timeout", "3s", "--dhcp-resend-timeout", "15s"],
): Promise<RunningKeeper> {
  return await startDhcp({
    settings: parseKeeperFlags(
      [...timeouts, "--dhcp-state-dir", `${dir}/leases`],
      `${dir}/podplex.sock`,
    ),
    clock: systemClock,
    log: () => {},
    metrics: new ControllerMetrics(),
  });
}

type Kind = "macvlan" | "bridge";

/** Calls `kind` through the real adapter, with `dhcp` (and nothing else) as IPAM. */
function caller(kind: Kind, lan: DhcpLan) {
  const hostNs = `/run/netns/${lan.hostNs}`;
  const registry = createRegistry({
    builtins: {
      macvlan: () => Promise.resolve(makeMacvlan({ hostNs })),
      bridge: () => Promise.resolve(makeBridge({ hostNs })),
      dhcp: () => Promise.resolve(dhcpIpam),
    },
  });
  return async (command: PluginRequest["command"], conf: object, env: PluginRequest["env"]) => {
    const plugin = await registry.get(kind, []);
    const out = await plugin.invoke({ command, conf: enc.encode(JSON.stringify(conf)), env });
    return out as unknown as CniResult;
  };
}

function netConf(kind: Kind, lan: DhcpLan, socket: string, extra: object = {}) {
  const link = kind === "macvlan" ? { master: lan.attach } : { bridge: lan.attach };
  return {
    cniVersion: "1.0.0",
    name: "ppdlan",
    type: kind,
    ...link,
    ipam: {
      type: "dhcp",
      daemonSocketPath: socket,
      request: [{ option: "6" }, { option: "15" }, { option: "119" }, { option: "121" }],
    },
    ...extra,
  };
}

function leaseOf(lan: DhcpLan, mac: string | undefined) {
  return lan.leases().find((l) => l.mac === mac);
}

async function addCheckDel(kind: Kind) {
  await using dir = await tempDir("ppdk");
  await using lan = await startLan({
    kind,
    extra: (p) => [
      `--dhcp-option=option:classless-static-route,10.207.0.0/16,${p}.254,10.208.0.0/16,0.0.0.0,` +
      `0.0.0.0/0,${p}.1`,
    ],
  });
  const k = await keeper(dir.path);
  try {
    await using pod = await tempNetns("dp");
    const call = caller(kind, lan);
    const env = { containerId: "dc1", netns: pod.path, ifname: "net1", path: [] };
    const conf = netConf(kind, lan, k.socket);
    const res = await call("ADD", conf, env);
    const iface = res.interfaces!.find((i) => i.sandbox)!;
    const lease = leaseOf(lan, iface.mac);
    assert.ok(lease, `dnsmasq has a lease for ${iface.mac}: ${JSON.stringify(lan.leases())}`);
    assert.equal(res.ips![0].address, `${lease.ip}/24`);
    assert.equal(res.ips![0].gateway, `${lan.prefix}.1`);
    assert.deepEqual(res.routes, [
      { dst: "10.207.0.0/16", gw: `${lan.prefix}.254` },
      { dst: "10.208.0.0/16", gw: "0.0.0.0", scope: 253 },
      { dst: "0.0.0.0/0", gw: `${lan.prefix}.1` },
    ]);
    const routes = await ipJson(pod.name, "route", "show", "dev", "net1");
    const via = Object.fromEntries(routes.map((r) => [r.dst, r.gateway ?? r.scope]));
    assert.equal(via["10.207.0.0/16"], `${lan.prefix}.254`);
    assert.equal(via["10.208.0.0/16"], "link");
    assert.equal(via["default"], `${lan.prefix}.1`);
    assert.deepEqual(res.dns, {
      nameservers: [`${lan.prefix}.53`],
      domain: "lan.test",
      search: ["lan.test", "corp.test"],
    });
    const [addr] = await ipJson(pod.name, "addr", "show", "dev", "net1");
    const v4 = (addr.addr_info as { family: string; local: string }[]).filter((a) =>
      a.family === "inet"
    );
    assert.deepEqual(v4.map((a) => a.local), [lease.ip]);
    await call("CHECK", { ...conf, prevResult: res }, env);
    assert.deepEqual(k.keeper.held, ["dc1/ppdlan/net1"]);

    await call("DEL", { ...conf, prevResult: res }, env);
    // Right after DEL: the release went out before the link was deleted.
    await waitFor("dnsmasq to drop the lease", () => !leaseOf(lan, iface.mac), 2000);
    assert.equal(await linkExists(pod.name, "net1"), false);
    assert.deepEqual(k.keeper.held, []);
    assert.deepEqual([...Deno.readDirSync(`${dir.path}/leases`)], []);
    // DEL again is fine (idempotent).
    await call("DEL", conf, env);
  } finally {
    await k.close();
  }
}

/**
 * A keeper of a daemon on a socket of its own, found by a per-call run that names no
 * daemonSocketPath but was pointed at that daemon (PODPLEX_SOCKET, as PluginEnv carries it).
 */
async function keeperBesideDaemonSocket() {
  await using dir = await tempDir("ppdk");
  await using lan = await startLan({ kind: "bridge" });
  const k = await keeper(dir.path);
  try {
    assert.equal(k.socket, `${dir.path}/dhcp.sock`);
    await using pod = await tempNetns("dp");
    const call = caller("bridge", lan);
    const env = {
      containerId: "dc2",
      netns: pod.path,
      ifname: "net1",
      path: [],
      daemonSocket: `${dir.path}/podplex.sock`,
    };
    const conf = netConf("bridge", lan, k.socket);
    delete (conf.ipam as { daemonSocketPath?: string }).daemonSocketPath;
    const res = await call("ADD", conf, env);
    assert.deepEqual(k.keeper.held, ["dc2/ppdlan/net1"]);
    await call("DEL", { ...conf, prevResult: res }, env);
    assert.deepEqual(k.keeper.held, []);
  } finally {
    await k.close();
  }
}

Deno.test({
  name: "dhcp: without daemonSocketPath, the keeper beside PODPLEX_SOCKET's daemon is used",
  ...opts,
  fn: keeperBesideDaemonSocket,
});

Deno.test({
  name: "dhcp via macvlan: ADD leases what dnsmasq shows, with routes and DNS; DEL releases",
  ...opts,
  fn: () => addCheckDel("macvlan"),
});

Deno.test({
  name: "dhcp via bridge: ADD leases what dnsmasq shows; DEL releases before the veth goes",
  ...opts,
  fn: () => addCheckDel("bridge"),
});

Deno.test({
  name: "dhcp: the keeper renews at T1 (dnsmasq's expiry moves) and CHECK sees a lost address",
  ...opts,
  async fn() {
    await using dir = await tempDir("ppdk");
    await using lan = await startLan({ kind: "macvlan", t1: 2, t2: 4 });
    const k = await keeper(dir.path);
    try {
      await using pod = await tempNetns("dp");
      const call = caller("macvlan", lan);
      const env = { containerId: "dr1", netns: pod.path, ifname: "net1", path: [] };
      const conf = netConf("macvlan", lan, k.socket);
      const res = await call("ADD", conf, env);
      const mac = res.interfaces![0].mac!;
      const first = leaseOf(lan, mac)!.expiry;
      await waitFor("a renewal", () => (leaseOf(lan, mac)?.expiry ?? 0) > first, 6000);
      await call("CHECK", { ...conf, prevResult: res }, env);
      await new Deno.Command("ip", {
        args: ["-n", pod.name, "addr", "flush", "dev", "net1"],
      }).output();
      await assert.rejects(
        call("CHECK", { ...conf, prevResult: res }, env),
        (e: unknown) => e instanceof CniError && /is not on "net1"/.test(e.message),
      );
      await call("DEL", conf, env);
    } finally {
      await k.close();
    }
  },
});

Deno.test({
  name: "dhcp: 20 pods ADDed at once get 20 distinct leases; DELed, dnsmasq holds none",
  ...opts,
  async fn() {
    await using dir = await tempDir("ppdk");
    await using lan = await startLan({ kind: "macvlan" });
    const k = await keeper(dir.path, ["--dhcp-timeout", "3s", "--dhcp-resend-timeout", "20s"]);
    const pods: TestNetns[] = [];
    try {
      for (let i = 0; i < 20; i++) pods.push(await tempNetns("dp"));
      const call = caller("macvlan", lan);
      const conf = netConf("macvlan", lan, k.socket);
      const env = (i: number) => ({
        containerId: `dm${i}`,
        netns: pods[i].path,
        ifname: "net1",
        path: [],
      });
      const results = await Promise.all(pods.map((_, i) => call("ADD", conf, env(i))));
      const ips = results.map((r) => r.ips![0].address.split("/")[0]);
      assert.equal(new Set(ips).size, 20);
      assert.deepEqual(lan.leases().map((l) => l.ip).sort(), [...ips].sort());
      await Promise.all(pods.map((_, i) => call("DEL", conf, env(i))));
      await waitFor("dnsmasq to hold no lease", () => lan.leases().length === 0, 3000);
      assert.deepEqual(k.keeper.held, []);
    } finally {
      await k.close();
      for (const p of pods) await p[Symbol.asyncDispose]();
    }
  },
});

Deno.test({
  name: "dhcp: with dnsmasq stopped ADD fails with code 11 in bounded time and leaves nothing",
  ...opts,
  async fn() {
    await using dir = await tempDir("ppdk");
    await using lan = await startLan({ kind: "macvlan" });
    await lan.stop();
    // Short timeouts: this test is about giving up in bounded time.
    const k = await keeper(dir.path, ["--dhcp-timeout", "1s", "--dhcp-resend-timeout", "3s"]);
    try {
      await using pod = await tempNetns("dp");
      const call = caller("macvlan", lan);
      const env = { containerId: "ds1", netns: pod.path, ifname: "net1", path: [] };
      const t0 = Date.now();
      await assert.rejects(
        call("ADD", netConf("macvlan", lan, k.socket), env),
        (e: unknown) => e instanceof CniError && e.code === 11 && /No DHCP server/.test(e.message),
      );
      assert.ok(Date.now() - t0 < 15_000, `ADD gave up after ${Date.now() - t0} ms`);
      const links = await ipJson(pod.name, "link", "show");
      assert.deepEqual(links.map((l) => l.ifname), ["lo"]);
      assert.deepEqual(k.keeper.held, []);
      assert.deepEqual(lan.leases(), []);
    } finally {
      await k.close();
    }
  },
});

Deno.test({
  name: "dhcp: without a daemon ADD fails with code 11 naming it, and DEL succeeds",
  ignore: !isRoot,
  async fn() {
    await using pod = await tempNetns("dp");
    const registry = createRegistry({ builtins: { dhcp: () => Promise.resolve(dhcpIpam) } });
    const plugin = builtinPlugin(dhcpIpam, () => registry);
    const conf = enc.encode(JSON.stringify({
      cniVersion: "1.0.0",
      name: "ppdlan",
      type: "macvlan",
      ipam: { type: "dhcp", daemonSocketPath: "/nonexistent/ppd/dhcp.sock" },
    }));
    const env = { containerId: "dn1", netns: pod.path, ifname: "net1", path: [] };
    await assert.rejects(
      plugin.invoke({ command: "ADD", conf, env }),
      (e: unknown) =>
        e instanceof CniError && e.code === 11 && /needs the podplex daemon/.test(e.message) &&
        e.message.includes("/nonexistent/ppd/dhcp.sock"),
    );
    await plugin.invoke({ command: "DEL", conf, env });
  },
});
