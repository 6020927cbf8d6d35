/**
 * What kubelet's pods ask of podplex through containerd's CRI: several networks by the
 * networks annotation (both forms), many sandboxes at once, a containerd killed and
 * restarted under running pods, bad annotations, and a resident daemon taking containerd's
 * calls through the installed shim. Each test checks containerd's answers against the kernel
 * (the pod's netns, the bridges) and podplex's disk (leases, state files), and that nothing
 * is left after StopPodSandbox + RemovePodSandbox (containerd's DEL, then its second one).
 */
import { deepStrictEqual as assertEquals, match, notEqual, ok } from "node:assert/strict";
import { containerdSkip, startContainerd } from "./_containerd.ts";
import {
  assertNothingLeft,
  bare,
  installPodplex,
  inSubnet24,
  podAddrs,
  serveInContainerd,
  stopRemove,
} from "./_containerd_pods.ts";
import { leaseFiles, stateFiles, tempDir } from "./testutils.ts";

const skip = await containerdSkip();
if (skip) console.warn(`containerd tests skipped: ${skip}`);
const NETWORKS = "k8s.v1.cni.cncf.io/networks";
const LONG = Deno.env.get("PODPLEX_LONG") === "1";

Deno.test({
  name: "containerd: several networks by annotation, the list form and the JSON form " +
    "(interface, ips, mac), each on its bridge; Stop + Remove releases all of them",
  ignore: !!skip,
  async fn() {
    await using c = await startContainerd();
    await using p = await installPodplex(c, {
      octet: 10,
      extra: 2,
      capabilities: { ips: true, mac: true },
    });
    const listed = await c.cri.runPodSandbox({
      name: "ppc-list",
      annotations: { [NETWORKS]: "net-a,default/net-b" },
    });
    const wanted = "10.161.12.77";
    const json = await c.cri.runPodSandbox({
      name: "ppc-json",
      annotations: {
        [NETWORKS]: JSON.stringify([
          { name: "net-a", interface: "ppdata" },
          { name: "net-b", namespace: "default", ips: [`${wanted}/24`], mac: "02:00:0a:a1:0c:4d" },
        ]),
      },
    });

    // The list form: eth0 on the cluster network, net1 and net2 in order.
    const a = await podAddrs(c, await c.netnsOf(listed));
    assertEquals([...a.keys()].sort(), ["eth0", "net1", "net2"]);
    ok(inSubnet24(bare(a.get("net1")![0]), p.subnets[1]), `net1 ${a.get("net1")}`);
    ok(inSubnet24(bare(a.get("net2")![0]), p.subnets[2]), `net2 ${a.get("net2")}`);
    const st = await c.cri.podSandboxStatus(listed);
    assertEquals(st.network?.ip, bare(a.get("eth0")![0]), "containerd reports eth0's address");

    // The JSON form: the interface named, the address and MAC asked for.
    const jsNs = await c.netnsOf(json);
    const b = await podAddrs(c, jsNs);
    assertEquals([...b.keys()].sort(), ["eth0", "net2", "ppdata"]);
    assertEquals(b.get("net2"), [`${wanted}/24`]);
    const link = JSON.parse(
      await c.inNs("ip", "-j", "-n", jsNs.split("/").pop()!, "link", "show", "dev", "net2"),
    ) as { address: string }[];
    assertEquals(link[0].address, "02:00:0a:a1:0c:4d");
    ok(leaseFiles(p.dataDir).includes(`net-b/${wanted}`), `${leaseFiles(p.dataDir)}`);

    // podplex's state keeps every attachment of each sandbox, for DEL without the API.
    const files = stateFiles(p.stateDir).filter((f) => !f.startsWith("."));
    assertEquals(files.length, 2, `${files}`);
    for (const f of files) {
      const s = JSON.parse(await Deno.readTextFile(`${p.stateDir}/${f}`));
      assertEquals(s.attachments.length, 3, `${f}: ${JSON.stringify(s.attachments)}`);
    }

    await stopRemove(c, listed);
    await stopRemove(c, json);
    await assertNothingLeft(c, p);
  },
});

Deno.test({
  name: `containerd: ${LONG ? 20 : 5} sandboxes with two networks each started at once ` +
    "get distinct addresses, all released after",
  ignore: !!skip,
  async fn() {
    const n = LONG ? 20 : 5;
    await using c = await startContainerd();
    await using p = await installPodplex(c, { octet: 20, extra: 1 });
    const ids = await Promise.all(
      Array.from(
        { length: n },
        (_, i) =>
          c.cri.runPodSandbox({ name: `ppc-burst-${i}`, annotations: { [NETWORKS]: "net-a" } }),
      ),
    );
    const seen = new Set<string>();
    for (const id of ids) {
      const addrs = await podAddrs(c, await c.netnsOf(id));
      assertEquals([...addrs.keys()].sort(), ["eth0", "net1"]);
      for (const cidr of addrs.values()) seen.add(bare(cidr[0]));
    }
    assertEquals(seen.size, 2 * n, "every address is a pod's own");
    assertEquals(leaseFiles(p.dataDir).length, 2 * n);
    await Promise.all(ids.map((id) => stopRemove(c, id)));
    await assertNothingLeft(c, p);
  },
});

Deno.test({
  name: "containerd: SIGKILLed and restarted under running pods, which keep their addresses; " +
    "Stop + Remove after the restart releases everything",
  ignore: !!skip,
  async fn() {
    await using c = await startContainerd();
    await using p = await installPodplex(c, { octet: 30, extra: 1 });
    const ids = [
      await c.cri.runPodSandbox({ name: "ppc-keep-0", annotations: { [NETWORKS]: "net-a" } }),
      await c.cri.runPodSandbox({ name: "ppc-keep-1" }),
    ];
    const before = new Map<string, string>();
    for (const id of ids) before.set(id, (await c.cri.podSandboxStatus(id)).network!.ip);
    const firstPid = c.pid();
    await c.kill();
    await c.start();
    notEqual(c.pid(), firstPid, "a new containerd");
    for (const id of ids) {
      const st = await c.cri.podSandboxStatus(id);
      assertEquals(st.state, "SANDBOX_READY");
      assertEquals(st.network?.ip, before.get(id), "the same address after the restart");
      const addrs = await podAddrs(c, await c.netnsOf(id));
      assertEquals(bare(addrs.get("eth0")![0]), before.get(id), "the kernel agrees");
    }
    assertEquals(leaseFiles(p.dataDir).length, 3, "the three leases are still held");
    for (const id of ids) await stopRemove(c, id);
    await assertNothingLeft(c, p);
  },
});

Deno.test({
  name: "containerd: bad networks annotations fail RunPodSandbox with podplex's error naming " +
    "the annotation or network, and leave nothing",
  ignore: !!skip,
  async fn() {
    await using c = await startContainerd();
    await using p = await installPodplex(c, { octet: 40, extra: 1 });
    const cases: [string, RegExp][] = [
      ["no-such-net", /no-such-net/],
      ['[{"name": "net-a"', /k8s\.v1\.cni\.cncf\.io\/networks/],
      ['[{"name": "net-a", "ips": ["not-an-ip"]}]', /"ips" entry "not-an-ip"/],
      ["net-a@an-ifname-too-long", /an-ifname-too-long/],
    ];
    for (const [i, [value, want]] of cases.entries()) {
      let err = "";
      await c.cri.runPodSandbox({ name: `ppc-bad-${i}`, annotations: { [NETWORKS]: value } })
        .catch((e) => (err = String(e)));
      match(err, /failed to setup network for sandbox/, `${value}: ${err}`);
      match(err, want, `${value}: ${err}`);
      // containerd removes the failed sandbox itself; what podplex made must be gone too.
      await assertNothingLeft(c, p);
    }
    // The node still serves a good pod afterwards.
    const id = await c.cri.runPodSandbox({
      name: "ppc-good",
      annotations: { [NETWORKS]: "net-a" },
    });
    assertEquals([...(await podAddrs(c, await c.netnsOf(id))).keys()].sort(), ["eth0", "net1"]);
    await stopRemove(c, id);
    await assertNothingLeft(c, p);
  },
});

Deno.test({
  name: "containerd: a resident podplex serve takes containerd's ADD and DELs through the " +
    "installed shim; StopPodSandbox twice is harmless",
  ignore: !!skip,
  async fn() {
    await using run = await tempDir("ppcd");
    const socket = `${run.path}/podplex.sock`;
    await using c = await startContainerd({ env: { PODPLEX_SOCKET: socket } });
    await using p = await installPodplex(c, { octet: 50, extra: 1 });
    await using daemon = await serveInContainerd(c, socket);

    const id = await c.cri.runPodSandbox({
      name: "ppc-thick",
      annotations: { [NETWORKS]: "net-a" },
    });
    const addrs = await podAddrs(c, await c.netnsOf(id));
    assertEquals([...addrs.keys()].sort(), ["eth0", "net1"]);
    // The daemon's own metrics say it ran the call (no per-call fallback happened).
    assertEquals(await daemon.requests("ADD"), 1, daemon.log());
    assertEquals(daemon.served("ADD"), 1, daemon.log());
    await c.cri.stopPodSandbox(id);
    // The first DEL released everything; the ones after it (a second Stop, Remove) find
    // nothing and succeed, as the spec asks of a DEL.
    assertEquals(await daemon.requests("DEL"), 1, daemon.log());
    assertEquals(leaseFiles(p.dataDir), [], "the first DEL released the leases");
    await c.cri.stopPodSandbox(id);
    await c.cri.removePodSandbox(id);
    ok(await daemon.requests("DEL") >= 2, daemon.log());
    assertEquals(daemon.served("DEL"), await daemon.requests("DEL"), "every DEL succeeded");
    await assertNothingLeft(c, p);
    ok(!/Cannot read the annotations/.test(await c.log()), "the annotations reached podplex");
  },
});

/** A chained plugin whose DEL fails while its marker file exists (ADD passes prevResult on). */
const FAIL_DEL_PLUGIN = `#!/usr/bin/env python3
import json, os, sys
conf = json.load(sys.stdin)
cmd = os.environ.get("CNI_COMMAND")
if cmd == "VERSION":
    print(json.dumps({"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]}))
elif cmd == "ADD":
    print(json.dumps(conf["prevResult"]))
elif cmd == "DEL" and os.path.exists(conf["marker"]):
    print(json.dumps({"cniVersion": "1.0.0", "code": 11, "msg": "ppfaildel: DEL refused"}))
    sys.exit(1)
`;

Deno.test({
  name: "containerd: a DEL that fails makes StopPodSandbox fail and keeps podplex's state; " +
    "kubelet's retry after the cause is gone releases everything",
  ignore: !!skip,
  async fn() {
    await using c = await startContainerd();
    const marker = `${c.dir}/refuse-del`;
    await Deno.writeTextFile(`${c.binDir}/ppfaildel`, FAIL_DEL_PLUGIN, { mode: 0o755 });
    await using p = await installPodplex(c, {
      octet: 60,
      extra: 1,
      chained: { type: "ppfaildel", marker },
    });
    const id = await c.cri.runPodSandbox({
      name: "ppc-retry",
      annotations: { [NETWORKS]: "net-a" },
    });
    assertEquals([...(await podAddrs(c, await c.netnsOf(id))).keys()].sort(), ["eth0", "net1"]);

    await Deno.writeTextFile(marker, "");
    let err = "";
    await c.cri.stopPodSandbox(id).catch((e) => (err = String(e)));
    match(err, /ppfaildel: DEL refused/, "containerd reports the delegate's error");
    const kept = stateFiles(p.stateDir).filter((f) => !f.startsWith("."));
    assertEquals(kept.length, 1, "the state stays for the retry");

    // RemovePodSandbox straight after the failed Stop: containerd stops (DELs) again first.
    await Deno.remove(marker);
    await c.cri.removePodSandbox(id);
    await assertNothingLeft(c, p);
  },
});
