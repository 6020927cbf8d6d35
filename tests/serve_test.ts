/**
 * `podplex serve` and `.tools/podplex-client` end to end, as root: a real daemon process on a
 * temp socket, the real `bin/podplex` (which execs the client when the socket exists), real
 * netns, bridges, leases and state on disk.
 * Every call goes through a process exactly as a runtime would make it; which path served a
 * call is read from the daemon's one log line per call.
 */
import assert from "node:assert/strict";
import {
  type BridgeNetworks,
  bridgeNetworks,
  ipJson,
  isRoot,
  leaseFiles,
  linkExists,
  run,
  stateFiles,
  tempDir,
  tempNetns,
  tryRun,
} from "./testutils.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const CLIENT = `${ROOT}/.tools/podplex-client`;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** A running `podplex serve`: its socket, log so far, and stop (SIGTERM) / crash (SIGKILL). */
interface Daemon extends AsyncDisposable {
  socket: string;
  log(): string;
  stop(signal?: Deno.Signal): Promise<void>;
}

async function startDaemon(socket: string): Promise<Daemon> {
  const child = new Deno.Command(`${ROOT}/bin/podplex`, {
    args: ["serve", "--socket", socket],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const reading = (async () => {
    for await (const chunk of child.stderr) log += dec.decode(chunk);
  })();
  let stopped = false;
  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    if (stopped) return;
    stopped = true;
    try {
      child.kill(signal);
    } catch { /* already gone */ }
    await child.status;
    await reading;
  };
  try {
    for (let i = 0; !log.includes("podplex serve: listening on"); i++) {
      if (i > 200) throw new Error(`podplex serve did not start: ${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (e) {
    await stop("SIGKILL");
    throw e;
  }
  return {
    socket,
    log: () => log,
    stop,
    async [Symbol.asyncDispose]() {
      await stop("SIGKILL");
      await Deno.remove(socket).catch(() => {});
    },
  };
}

/** What one process call printed and returned. */
interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cmd` with `env` (plus PATH) and `stdin`, optionally inside netns `inNs`. */
async function call(
  cmd: string[],
  env: Record<string, string>,
  stdin: string,
  inNs?: string,
  cwd?: string,
): Promise<Outcome> {
  const argv = inNs ? ["ip", "netns", "exec", inNs, ...cmd] : cmd;
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: { PATH: Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin", ...env },
    clearEnv: true,
    cwd,
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

type Fixture = BridgeNetworks;

/** Three bridge + host-local networks net-a, net-b, net-c (namespace default) in a temp dir. */
function fixture(): Promise<Fixture> {
  return bridgeNetworks(3, "10.78");
}

function conf(f: Fixture, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    cniVersion: "1.1.0",
    name: "podplex",
    type: "podplex",
    clusterNetwork: "default/net-a",
    defaultNetworks: ["default/net-b", "default/net-c"],
    networksDir: f.networksDir,
    stateDir: f.stateDir,
    ...extra,
  });
}

function cniEnv(command: string, netns: string, id: string, socket: string) {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: id,
    CNI_NETNS: netns,
    CNI_IFNAME: "eth0",
    CNI_PATH: "/usr/lib/cni",
    CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod1",
    PODPLEX_SOCKET: socket,
  };
}

/** The pod's links and IPv4 addresses, as `name addr/len`. */
async function podAddrs(ns: string): Promise<string[]> {
  const links = await ipJson(ns, "addr", "show");
  return links.flatMap((l) =>
    ((l.addr_info ?? []) as Array<{ family: string; local: string; prefixlen: number }>)
      .filter((a) => a.family === "inet" && l.ifname !== "lo")
      .map((a) => `${l.ifname} ${a.local}/${a.prefixlen}`)
  ).sort();
}

/** The names of every link in netns `ns`. */
async function linkNames(ns: string): Promise<string[]> {
  return (await ipJson(ns, "link", "show")).map((l) => String(l.ifname)).sort();
}

/** The host links still enslaved to bridge `br` (none when it is gone). */
async function bridgePorts(br: string): Promise<string[]> {
  if (!(await linkExists(undefined, br))) return [];
  return (await ipJson(undefined, "link", "show", "master", br)).map((l) => String(l.ifname));
}

/** A result with what differs between two identical pods (bridge names, MACs, veths) masked. */
function normalise(stdout: string, f: Fixture, nsPath: string): unknown {
  let text = stdout.replaceAll(nsPath, "NETNS");
  f.bridges.forEach((br, i) => text = text.replaceAll(br, `BRIDGE${i}`));
  text = text.replace(/"veth[0-9a-f]{8}"/g, '"VETH"')
    .replace(/"([0-9a-f]{2}:){5}[0-9a-f]{2}"/g, '"MAC"');
  return JSON.parse(text);
}

/** Kernel, lease and state outcome of one pod, comparable across fixtures. */
async function outcome(f: Fixture, ns: string) {
  return {
    addrs: await podAddrs(ns),
    leases: leaseFiles(f.dataDir),
    state: stateFiles(f.stateDir),
  };
}

/** ADD, CHECK, DEL of one pod through `launcher`, with the outcome after ADD and after DEL. */
async function lifecycle(
  launcher: string,
  f: Fixture,
  ns: { name: string; path: string },
  socket: string,
) {
  const add = await call([launcher], cniEnv("ADD", ns.path, "ppc1", socket), conf(f));
  assert.equal(add.code, 0, add.stdout + add.stderr);
  const afterAdd = await outcome(f, ns.name);
  const prev = { prevResult: JSON.parse(add.stdout) };
  const check = await call([launcher], cniEnv("CHECK", ns.path, "ppc1", socket), conf(f, prev));
  assert.equal(check.code, 0, check.stdout + check.stderr);
  const del = await call([launcher], cniEnv("DEL", ns.path, "ppc1", socket), conf(f, prev));
  assert.equal(del.code, 0, del.stdout + del.stderr);
  return {
    result: normalise(add.stdout, f, ns.path),
    afterAdd,
    checkOut: check.stdout,
    afterDel: await outcome(f, ns.name),
  };
}

async function setup() {
  await run("sh", `${ROOT}/scripts/build-client.sh`);
  const dir = await tempDir("ppserve");
  const launcher = `${ROOT}/bin/podplex`;
  return { dir, launcher, socket: `${dir.path}/run/podplex.sock` };
}

/** How many calls the daemon ran (one log line each), by verb. */
function served(d: Daemon, verb: string): number {
  return d.log().split("\n").filter((l) => l.includes(`: ${verb} `) && l.includes(": exit"))
    .length;
}

Deno.test({
  name: "serve runs ADD, CHECK and DEL with the same results and outcome as the exec path",
  ignore: !isRoot,
  async fn() {
    const { dir, launcher, socket } = await setup();
    await using _dir = dir;
    await using direct = await fixture();
    await using viaDaemon = await fixture();
    await using ns1 = await tempNetns();
    await using ns2 = await tempNetns();
    // No socket: the launcher execs deno as today.
    const want = await lifecycle(launcher, direct, ns1, `${dir.path}/none.sock`);
    await using d = await startDaemon(socket);
    const got = await lifecycle(launcher, viaDaemon, ns2, socket);
    assert.equal(served(d, "ADD") + served(d, "CHECK") + served(d, "DEL"), 3, d.log());
    assert.deepEqual(got, want);
    assert.deepEqual(want.afterAdd.addrs.length, 3);
    assert.deepEqual(want.afterDel, { addrs: [], leases: [], state: [] });
    const st = await Deno.lstat(socket);
    assert.equal(st.mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(`${dir.path}/run`)).mode! & 0o777, 0o700);
  },
});

Deno.test({
  name: "serve answers a bad conf with code 7 and exit 1",
  ignore: !isRoot,
  async fn() {
    const { dir, launcher, socket } = await setup();
    await using _dir = dir;
    await using f = await fixture();
    await using ns = await tempNetns();
    await using d = await startDaemon(socket);
    const bad = conf(f, { clusterNetwrok: "default/net-a" });
    const out = await call([launcher], cniEnv("ADD", ns.path, "ppbad", socket), bad);
    assert.equal(out.code, 1);
    const err = JSON.parse(out.stdout);
    assert.equal(err.code, 7);
    assert(err.msg.includes("clusterNetwrok"), err.msg);
    assert.equal(served(d, "ADD"), 1, d.log());
  },
});

Deno.test({
  name: "serve resolves a conf's relative paths against the caller's working directory",
  ignore: !isRoot,
  async fn() {
    const { dir, launcher, socket } = await setup();
    await using _dir = dir;
    await using f = await fixture();
    await using ns = await tempNetns();
    await using d = await startDaemon(socket);
    const rel = conf(f, { networksDir: "networks.d", stateDir: "state" });
    const env = cniEnv("ADD", ns.path, "ppcwd", socket);
    const add = await call([launcher], env, rel, undefined, f.dir);
    assert.equal(add.code, 0, add.stdout + add.stderr);
    assert.equal(served(d, "ADD"), 1, d.log());
    assert.deepEqual(stateFiles(f.stateDir), ["ppcwd@eth0.json"]);
    const del = await call([launcher], { ...env, CNI_COMMAND: "DEL" }, rel, undefined, f.dir);
    assert.equal(del.code, 0, del.stdout + del.stderr);
    assert.deepEqual(leaseFiles(f.dataDir), []);
  },
});

Deno.test({
  name: "the client falls back to exec when the daemon is stopped or killed",
  ignore: !isRoot,
  async fn() {
    const { dir, launcher, socket } = await setup();
    await using _dir = dir;
    await using f = await fixture();
    await using ns = await tempNetns();
    const d = await startDaemon(socket);
    await d.stop("SIGTERM");
    assert(!(await tryRun("test", "-e", socket)), "SIGTERM leaves no socket behind");
    // A killed daemon leaves a stale socket: the launcher uses the client, connect is refused.
    await using killed = await startDaemon(socket);
    await killed.stop("SIGKILL");
    assert((await Deno.lstat(socket)).isSocket);
    const add = await call([launcher], cniEnv("ADD", ns.path, "ppfb", socket), conf(f));
    assert.equal(add.code, 0, add.stdout + add.stderr);
    assert.equal((await podAddrs(ns.name)).length, 3);
    const del = await call([launcher], cniEnv("DEL", ns.path, "ppfb", socket), conf(f));
    assert.equal(del.code, 0, del.stdout + del.stderr);
    assert.deepEqual(leaseFiles(f.dataDir), []);
    // A new daemon replaces the stale socket.
    await using again = await startDaemon(socket);
    const v = await call([launcher], { CNI_COMMAND: "VERSION", PODPLEX_SOCKET: socket }, "");
    assert.equal(v.code, 0);
    assert.equal(JSON.parse(v.stdout).cniVersion, "1.1.0");
    assert.equal(served(again, "VERSION"), 1, again.log());
  },
});

Deno.test({
  name: "a call from another netns falls back and does its work in that netns",
  ignore: !isRoot,
  async fn() {
    const { dir, launcher, socket } = await setup();
    await using _dir = dir;
    await using f = await fixture();
    await using host = await tempNetns("h"); // the caller's "host" netns: bridges go here
    await using pod = await tempNetns();
    await using d = await startDaemon(socket);
    const env = cniEnv("ADD", pod.path, "ppother", socket);
    const add = await call([launcher], env, conf(f), host.name);
    assert.equal(add.code, 0, add.stdout + add.stderr);
    assert(
      d.log().includes("not served (wrong namespace: the caller is in another netns)"),
      d.log(),
    );
    assert.equal(served(d, "ADD"), 0);
    for (const br of f.bridges) {
      assert(await tryRun("ip", "-n", host.name, "link", "show", "dev", br), br);
      assert(!(await tryRun("ip", "link", "show", "dev", br)), `${br} is not on the host`);
    }
    assert.equal((await podAddrs(pod.name)).length, 3);
    const del = await call([launcher], { ...env, CNI_COMMAND: "DEL" }, conf(f), host.name);
    assert.equal(del.code, 0, del.stdout + del.stderr);
    assert.deepEqual(leaseFiles(f.dataDir), []);
  },
});

Deno.test({
  name: "serve answers 10 concurrent clients correctly, and 10 concurrent DELs release everything",
  ignore: !isRoot,
  async fn() {
    const { dir, launcher, socket } = await setup();
    await using _dir = dir;
    await using f = await fixture();
    const nss = [];
    try {
      for (let i = 0; i < 10; i++) nss.push(await tempNetns());
      await using d = await startDaemon(socket);
      const adds = await Promise.all(
        nss.map((ns, i) => call([launcher], cniEnv("ADD", ns.path, `ppcc${i}`, socket), conf(f))),
      );
      adds.forEach((a, i) => assert.equal(a.code, 0, `pod ${i}: ${a.stdout}${a.stderr}`));
      assert.equal(served(d, "ADD"), 10, d.log());
      const all = await Promise.all(nss.map((ns) => podAddrs(ns.name)));
      const ips = all.flat().map((l) => l.split(" ")[1]);
      assert.equal(new Set(ips).size, 30, "30 distinct addresses");
      // Each pod's result names the addresses that pod really has.
      adds.forEach((a, i) => {
        const got = (JSON.parse(a.stdout).ips as Array<{ address: string }>).map((x) => x.address);
        assert.deepEqual(got.sort(), all[i].map((l) => l.split(" ")[1]).sort());
      });
      assert.equal(leaseFiles(f.dataDir).length, 30);
      const dels = await Promise.all(
        nss.map((ns, i) => call([launcher], cniEnv("DEL", ns.path, `ppcc${i}`, socket), conf(f))),
      );
      dels.forEach((r, i) => assert.equal(r.code, 0, `pod ${i}: ${r.stdout}${r.stderr}`));
      // All ran in the daemon (DELs overlap there), none fell back to a process.
      assert.equal(served(d, "DEL"), 10, d.log());
      assert.deepEqual(leaseFiles(f.dataDir), []);
      assert.deepEqual(stateFiles(f.stateDir), []);
      for (const ns of nss) assert.deepEqual(await linkNames(ns.name), ["lo"], ns.name);
      for (const br of f.bridges) assert.deepEqual(await bridgePorts(br), [], br);
    } finally {
      for (const ns of nss) await ns[Symbol.asyncDispose]();
    }
  },
});

Deno.test({
  name: "the client reports code 11 and does not fall back when the daemon never answers",
  ignore: !isRoot,
  async fn() {
    const { dir } = await setup();
    await using _dir = dir;
    const socket = `${dir.path}/mute.sock`;
    const listener = Deno.listen({ transport: "unix", path: socket });
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const c of listener) held.push(c);
    })().catch(() => {});
    try {
      const marker = `${dir.path}/fallback-ran`;
      const out = await call(
        [CLIENT, "--", "sh", "-c", `touch ${marker}`],
        { CNI_COMMAND: "ADD", PODPLEX_SOCKET: socket, PODPLEX_CLIENT_TIMEOUT: "1" },
        "{}",
      );
      assert.equal(out.code, 1);
      const err = JSON.parse(out.stdout);
      assert.equal(err.code, 11);
      assert.equal(err.msg, "podplex daemon did not answer");
      assert(!(await tryRun("test", "-e", marker)), "the fallback command must not run");
    } finally {
      for (const c of held) c.close();
      listener.close();
      await accepting;
    }
  },
});

Deno.test({
  name: "the client falls back with the same stdin when no daemon listens",
  ignore: !isRoot,
  async fn() {
    const { dir } = await setup();
    await using _dir = dir;
    const out = await call(
      [CLIENT, "--", "sh", "-c", 'printf "%s|%s" "$CNI_COMMAND" "$(cat)"'],
      { CNI_COMMAND: "ADD", PODPLEX_SOCKET: `${dir.path}/absent.sock` },
      '{"name":"x"}',
    );
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, 'ADD|{"name":"x"}');
  },
});
