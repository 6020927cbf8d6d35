import assert from "node:assert/strict";
import { callPaths, checkHostPaths, isUnder, normalisePath, viewProblem } from "./view.ts";
import type { CallFrame } from "./protocol.ts";

const enc = new TextEncoder();

function call(
  env: Record<string, string>,
  conf: unknown,
  target = { dev: 0n, ino: 0n },
): CallFrame {
  return {
    kind: "call",
    build: "dev",
    netns: 1n,
    mntns: 2n,
    target,
    cwd: { dev: 0n, ino: 0n },
    env: { PODPLEX_CWD: "/", ...env },
    stdin: enc.encode(JSON.stringify(conf)),
  };
}

const podplex = (extra: Record<string, unknown> = {}) => ({
  cniVersion: "1.0.0",
  name: "p",
  plugins: [{ type: "podplex", ...extra }],
});

Deno.test("paths are normalised before the prefix test", () => {
  assert.equal(normalisePath("/etc/cni/../../root//x/."), "/root/x");
  assert(isUnder("/var/lib/cni/podplex", "/var/lib/cni"));
  assert(!isUnder("/var/lib/cnix", "/var/lib/cni"));
  assert(!isUnder("/var/lib/cni/../../../etc/shadow", "/var/lib/cni"));
});

Deno.test("a podplex conf's files include its defaults and a plugin's ipam.dataDir", () => {
  const paths = callPaths(
    { CNI_PATH: "/opt/cni/bin:" },
    enc.encode(JSON.stringify(podplex({ kubeconfig: "/etc/cni/net.d/podplex.d/k" }))),
  );
  assert.deepEqual(paths, [
    "/opt/cni/bin",
    "/etc/cni/podplex/networks.d",
    "/var/lib/cni/podplex",
    "/etc/cni/net.d",
    "/etc/cni/net.d/podplex.d/k",
  ]);
  const bridge = { cniVersion: "1.0.0", name: "b", type: "bridge", ipam: { type: "host-local" } };
  assert.deepEqual(callPaths({}, enc.encode(JSON.stringify(bridge))), ["/var/lib/cni/networks"]);
});

Deno.test("a call is refused naming the first file the daemon does not share", () => {
  const view = { paths: ["/etc/cni", "/var/lib/cni", "/opt/cni/bin"] };
  assert.equal(viewProblem(view, call({ CNI_PATH: "/opt/cni/bin" }, podplex())), undefined);
  assert.match(
    viewProblem(view, call({}, podplex({ networksDir: "/srv/nets" })))!,
    /"\/srv\/nets" is not under a path the daemon shares/,
  );
  assert.match(
    viewProblem(view, call({ CNI_PATH: "/usr/lib/cni" }, podplex()))!,
    /"\/usr\/lib\/cni" is not under/,
  );
});

Deno.test("CNI_NETNS must be the same file to the daemon, or absent for both", () => {
  const view = { paths: ["/etc/cni", "/var/lib/cni"] };
  const st = Deno.statSync("/proc/self/ns/net");
  const same = { dev: BigInt(st.dev), ino: BigInt(st.ino!) };
  const netns = { CNI_NETNS: "/proc/self/ns/net" };
  assert.equal(viewProblem(view, call(netns, podplex(), same)), undefined);
  assert.match(
    viewProblem(view, call(netns, podplex(), { dev: same.dev, ino: same.ino + 1n }))!,
    /CNI_NETNS "\/proc\/self\/ns\/net" is not the same file/,
  );
  // The shim saw nothing there (a DEL after the netns went): so must the daemon.
  assert.match(viewProblem(view, call(netns, podplex()))!, /is not the same file/);
  assert.equal(viewProblem(view, call({ CNI_NETNS: "/run/netns/gone-ppt" }, podplex())), undefined);
});

Deno.test("relative paths need the caller's cwd to be the daemon's", () => {
  const view = { paths: ["/"] };
  const c = call({}, podplex({ stateDir: "state" }));
  assert.match(
    viewProblem(view, c)!,
    /relative paths and the caller's cwd "\/" is not the daemon's/,
  );
  const root = Deno.statSync("/");
  c.cwd = { dev: BigInt(root.dev), ino: BigInt(root.ino!) };
  assert.equal(viewProblem(view, c), undefined);
});

Deno.test("host paths that are not the host's are dropped at startup, saying why", () => {
  const dir = Deno.makeTempDirSync({ prefix: "pptview" });
  try {
    Deno.mkdirSync(`${dir}/host/a`, { recursive: true });
    Deno.mkdirSync(`${dir}/host/b`, { recursive: true });
    // "/a" is the host root's "/a" only when they are one directory: here /a is not.
    const { view, dropped } = checkHostPaths({ paths: [`${dir}/host/a`, "/tmp"], root: "/" });
    assert.deepEqual(view.paths, [`${dir}/host/a`, "/tmp"]);
    assert.deepEqual(dropped, []);
    const other = checkHostPaths({ paths: ["/a", "/b", "/nope"], root: `${dir}/host` });
    assert.deepEqual(other.view.paths, []);
    assert.equal(other.dropped.length, 2);
    assert.match(other.dropped[0], /"\/a" is not the host's/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
