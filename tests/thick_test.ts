/**
 * Thick mode as deployed: `podplex serve` in a container of its own (tests/_thick_rig.ts:
 * its own mount namespace with the DaemonSet's hostPath mounts, /run/netns propagated, the
 * host's netns and pids) serving the shim that a libcni-style runtime (tests/cni_runner.py)
 * execs on the host. Results, kernel state, leases and state files are compared with the
 * same calls made per call; calls move between the two modes; a shim of another build runs
 * per call; a daemon SIGKILLed in the middle of an ADD leaves nothing the runtime's DEL does
 * not clean up, and restarted it serves again with nothing stale for GC.
 */
import assert from "node:assert/strict";
import { ipJson, isRoot, leaseFiles, linkExists, run, stateFiles, tempNetns } from "./testutils.ts";
import { exec, type Outcome, type ThickNode, thickNode } from "./_thick_rig.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Makes net-a a conflist of bridge + the marker plugin, installed in the node's bin dir. */
async function withMarker(node: ThickNode, extra: Record<string, unknown> = {}): Promise<string> {
  const mark = `${node.dir}/mark.log`;
  await Deno.copyFile(`${ROOT}/tests/mark_plugin.sh`, `${node.binDir}/ppt-mark`);
  await Deno.chmod(`${node.binDir}/ppt-mark`, 0o755);
  const file = `${node.networksDir}/default/net-a.json`;
  const bridge = JSON.parse(await Deno.readTextFile(file));
  const { cniVersion, name, ...plugin } = bridge;
  await Deno.writeTextFile(
    file,
    JSON.stringify({
      cniVersion,
      name,
      plugins: [plugin, { type: "ppt-mark", markFile: mark, ...extra }],
    }),
  );
  return mark;
}

/** The mount namespace of this process (the "host"). */
function hostMountNs(): string {
  return Deno.readLinkSync("/proc/self/ns/mnt");
}

/** A result with what differs between two identical pods masked. */
function normalise(stdout: string, netns: string): unknown {
  const text = stdout.replaceAll(netns, "NETNS")
    .replace(/"veth[0-9a-f]{8}"/g, '"VETH"')
    .replace(/"([0-9a-f]{2}:){5}[0-9a-f]{2}"/g, '"MAC"');
  return JSON.parse(text);
}

async function podAddrs(ns: string): Promise<string[]> {
  const links = await ipJson(ns, "addr", "show");
  return links.flatMap((l) =>
    ((l.addr_info ?? []) as Array<{ family: string; local: string; prefixlen: number }>)
      .filter((a) => a.family === "inet" && l.ifname !== "lo")
      .map((a) => `${l.ifname} ${a.local}/${a.prefixlen}`)
  ).sort();
}

/** What a pod left on the node: links in its netns, ports on the bridges, leases, state. */
async function leftovers(node: ThickNode, ns: string) {
  const ports: string[] = [];
  for (const br of node.bridges) {
    if (!(await linkExists(undefined, br))) continue;
    ports.push(
      ...(await ipJson(undefined, "link", "show", "master", br)).map((l) => String(l.ifname)),
    );
  }
  const links = (await ipJson(ns, "link", "show")).map((l) => String(l.ifname)).filter((n) =>
    n !== "lo"
  );
  return {
    links,
    ports,
    leases: leaseFiles(node.dataDir),
    state: stateFiles(node.stateDir),
  };
}

const NOTHING = { links: [], ports: [], leases: [], state: [] };

function ok(o: Outcome, what: string): Outcome {
  assert.equal(o.code, 0, `${what}: ${o.stdout}${o.stderr}`);
  return o;
}

/** ADD, CHECK, DEL of one pod through the runtime, with what each step left. */
async function lifecycle(node: ThickNode, ns: { name: string; path: string }, id: string) {
  const pod = { netns: ns.path, id };
  const add = ok(await node.runtime("ADD", pod), "ADD");
  const afterAdd = { addrs: await podAddrs(ns.name), leases: leaseFiles(node.dataDir) };
  const state = stateFiles(node.stateDir).map((f) =>
    normalise(Deno.readTextFileSync(`${node.stateDir}/${f}`), ns.path)
  );
  ok(await node.runtime("CHECK", pod), "CHECK");
  ok(await node.runtime("DEL", pod), "DEL");
  return {
    result: normalise(add.stdout, ns.path),
    afterAdd,
    state: JSON.stringify(state).replace(/"createdAt":"[^"]+"/g, "").replaceAll(node.dir, "N"),
    afterDel: await leftovers(node, ns.name),
  };
}

Deno.test({
  name: "thick: the daemon in its own mount namespace serves the host's runtime as per call",
  ignore: !isRoot,
  async fn() {
    await using perCall = await thickNode();
    await using thick = await thickNode({ bridges: perCall.bridges });
    const marks = [await withMarker(perCall), await withMarker(thick)];
    await using ns1 = await tempNetns("t");
    await using ns2 = await tempNetns("t");
    const want = await lifecycle(perCall, ns1, "ppt-thick-1");
    await using d = await thick.startDaemon();
    assert.match(d.log(), /thick mode, host paths .*\/run\/netns/);
    const ready = ok(
      await exec([`${thick.binDir}/podplex`, "--ready"], {
        PODPLEX_SOCKET: thick.socket,
      }),
      "--ready",
    );
    assert.equal(JSON.parse(ready.stdout).ready, true);
    const got = await lifecycle(thick, ns2, "ppt-thick-1");
    assert.deepEqual(
      [d.served("ADD"), d.served("CHECK"), d.served("DEL")],
      [1, 1, 1],
      d.log(),
    );
    assert.deepEqual(got, want);
    assert.equal(want.afterAdd.addrs.length, 3);
    assert.deepEqual(want.afterDel, NOTHING);
    // The external plugin ran from the host's bin dir in the host's mount namespace both
    // times (the daemon's own is another).
    const host = hostMountNs();
    for (const m of marks) {
      const lines = (await Deno.readTextFile(m)).trim().split("\n");
      assert.deepEqual(lines, [`ADD ${host} /`, `CHECK ${host} /`, `DEL ${host} /`]);
    }
    assert.notEqual(Deno.readLinkSync(`/proc/${d.pid}/ns/mnt`), host);
  },
});

Deno.test({
  name: "thick: a pod ADDed by one mode is CHECKed and DELeted by the other, nothing lost",
  ignore: !isRoot,
  async fn() {
    await using node = await thickNode();
    await using ns = await tempNetns("t");
    const pod = { netns: ns.path, id: "ppt-move-1" };
    // Daemon -> per call.
    const d1 = await node.startDaemon();
    try {
      ok(await node.runtime("ADD", pod), "ADD via the daemon");
      assert.equal(d1.served("ADD"), 1, d1.log());
    } finally {
      await d1.stop("SIGTERM");
    }
    assert.equal((await podAddrs(ns.name)).length, 3);
    ok(await node.runtime("CHECK", pod), "CHECK per call");
    ok(await node.runtime("DEL", pod), "DEL per call");
    assert.deepEqual(await leftovers(node, ns.name), NOTHING);
    // Per call -> daemon.
    ok(await node.runtime("ADD", pod), "ADD per call");
    await using d2 = await node.startDaemon();
    ok(await node.runtime("CHECK", pod), "CHECK via the daemon");
    ok(await node.runtime("DEL", pod), "DEL via the daemon");
    assert.deepEqual([d2.served("CHECK"), d2.served("DEL")], [1, 1], d2.log());
    assert.deepEqual(await leftovers(node, ns.name), NOTHING);
  },
});

Deno.test({
  name: "thick: a shim of another build runs per call; the daemon never serves it",
  ignore: !isRoot,
  async fn() {
    await using node = await thickNode();
    await using ns = await tempNetns("t");
    await using d = await node.startDaemon();
    // An upgrade half done: the host's entry (the shim) is another build than the daemon,
    // its payload beside the old one.
    const payload = (await Array.fromAsync(Deno.readDir(`${node.binDir}/podplex.d`)))[0].name;
    await Deno.symlink(payload, `${node.binDir}/podplex.d/0ther0build0`);
    await run(
      "sh",
      `${ROOT}/scripts/build-client.sh`,
      `${node.binDir}/podplex`,
      "0ther0build0",
      `${ROOT}/bin/node-entry.c`,
    );
    const pod = { netns: ns.path, id: "ppt-skew-1" };
    ok(await node.runtime("ADD", pod), "ADD");
    ok(await node.runtime("DEL", pod), "DEL");
    assert.equal(d.served("ADD") + d.served("DEL"), 0, d.log());
    assert.match(
      d.log(),
      /not served \(the client is of build "0ther0build0", the daemon of build/,
    );
    assert.deepEqual(await leftovers(node, ns.name), NOTHING);
  },
});

Deno.test({
  name:
    "thick: a daemon SIGKILLed during an ADD: the runtime's DEL cleans up, the restarted daemon serves and GC finds nothing stale",
  ignore: !isRoot,
  async fn() {
    await using node = await thickNode();
    const mark = await withMarker(node, { sleepAdd: 3 });
    await using ns = await tempNetns("t");
    const pod = { netns: ns.path, id: "ppt-kill-1" };
    const d1 = await node.startDaemon();
    let add: Outcome;
    try {
      const adding = node.runtime("ADD", pod);
      // The ADD is inside net-a's chain (the bridge ran, the marker sleeps): kill it there.
      for (let i = 0; !(await Deno.readTextFile(mark).catch(() => "")).includes("ADD"); i++) {
        if (i > 200) throw new Error("The ADD never reached the marker plugin");
        await new Promise((r) => setTimeout(r, 25));
      }
      await d1.stop("SIGKILL");
      add = await adding;
    } finally {
      await d1.stop("SIGKILL");
    }
    assert.equal(add.code, 1, add.stdout);
    assert.equal(JSON.parse(add.stdout).code, 11, add.stdout);
    assert(leaseFiles(node.dataDir).length > 0, "the killed ADD had taken an address");
    // The runtime tears the failed sandbox down: the socket is stale, DEL runs per call.
    ok(await node.runtime("DEL", pod), "DEL after the kill");
    assert.deepEqual(await leftovers(node, ns.name), NOTHING);
    await using d2 = await node.startDaemon();
    const v = ok(await node.call({ CNI_COMMAND: "VERSION" }, ""), "VERSION");
    assert.equal(JSON.parse(v.stdout).cniVersion, "1.1.0");
    // As libcni probes (invoke.GetVersionInfo): dummy values that name no netns or dir.
    const dummy = { CNI_COMMAND: "VERSION", CNI_NETNS: "dummy", CNI_IFNAME: "dummy" };
    const probed = ok(await node.call({ ...dummy, CNI_PATH: "dummy" }, ""), "VERSION, dummy env");
    assert.deepEqual(JSON.parse(probed.stdout), JSON.parse(v.stdout));
    const conf = JSON.parse(node.conflist);
    const gcConf = {
      ...conf.plugins[0],
      cniVersion: "1.1.0",
      name: conf.name,
      "cni.dev/valid-attachments": [],
    };
    const gc = await node.call(
      { CNI_COMMAND: "GC", CNI_PATH: node.binDir },
      JSON.stringify(gcConf),
    );
    ok(gc, "GC");
    assert.deepEqual([d2.served("VERSION"), d2.served("GC")], [2, 1], d2.log());
    assert.deepEqual(await leftovers(node, ns.name), NOTHING);
  },
});

Deno.test({
  name: "thick: a conf naming files the daemon does not share runs per call",
  ignore: !isRoot,
  async fn() {
    await using node = await thickNode({ networks: 1 });
    await using ns = await tempNetns("t");
    // Network definitions moved to a directory the DaemonSet does not mount.
    const outside = `${node.dir}/elsewhere`;
    await run("cp", "-a", node.networksDir, outside);
    const conf = JSON.parse(node.conflist);
    conf.plugins[0].networksDir = outside;
    await Deno.writeTextFile(`${node.confDir}/00-podplex.conflist`, JSON.stringify(conf));
    await using d = await node.startDaemon();
    const pod = { netns: ns.path, id: "ppt-outside-1" };
    ok(await node.runtime("ADD", pod), "ADD");
    assert.equal((await podAddrs(ns.name)).length, 1);
    ok(await node.runtime("DEL", pod), "DEL");
    assert.equal(d.served("ADD") + d.served("DEL"), 0, d.log());
    assert.match(d.log(), /not served \(".*\/elsewhere" is not under a path the daemon shares/);
    assert.deepEqual(await leftovers(node, ns.name), NOTHING);
  },
});
