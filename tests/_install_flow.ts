/**
 * The DaemonSet's life on a node, checked against a temp root standing in for the host
 * (`bin/` = /opt/cni/bin, `net.d/` = /etc/cni/net.d, `sa/` = the service-account mount):
 * `podplex install --watch --cleanup-config-on-exit` copies the artifact, writes the
 * kubeconfig, waits for a default conf that appears only after it started, wraps it, follows
 * a token rotation and a default-conf change, and removes its confs on SIGTERM. Shared by the
 * host run (tests/install_test.ts) and the container image run (tests/image_test.ts).
 *
 * @module
 */
import { entryVersion } from "../cli/_install_artifact.ts";
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { parseYaml } from "../conf/yaml.ts";
import { tempDir } from "./testutils.ts";

/** A fake host: its dirs, removed on dispose. */
export interface FakeHost extends AsyncDisposable {
  root: string;
  bin: string;
  confDir: string;
  saDir: string;
}

/** Makes a fake host with an empty bin and conf dir and a service account (token "tok1"). */
export async function fakeHost(): Promise<FakeHost> {
  const tmp = await tempDir("ppn-host");
  const h = {
    root: tmp.path,
    bin: `${tmp.path}/bin`,
    confDir: `${tmp.path}/net.d`,
    saDir: `${tmp.path}/sa`,
  };
  for (const d of [h.bin, h.confDir, h.saDir]) await Deno.mkdir(d);
  await Deno.writeTextFile(`${h.saDir}/token`, "tok1");
  await Deno.writeTextFile(`${h.saDir}/ca.crt`, "-----BEGIN CERTIFICATE-----\nMIIBfake\n");
  return { ...h, [Symbol.asyncDispose]: () => tmp[Symbol.asyncDispose]() };
}

/** What the flow needs from the way install runs (a host process or a container). */
export interface InstallRun {
  /** Sends SIGTERM and resolves with the exit code. */
  stop(): Promise<number>;
  /** Everything it printed so far (for failure messages). */
  output(): string;
}

/**
 * Watches a started install (a host process or `podman run`): collects what it prints and
 * stops it with SIGTERM (podman proxies the signal to the container, as kubelet's runtime).
 */
export function watched(child: Deno.ChildProcess): InstallRun & { child: Deno.ChildProcess } {
  let text = "";
  const dec = new TextDecoder();
  const pump = (s: ReadableStream<Uint8Array>) =>
    s.pipeTo(new WritableStream({ write: (b) => void (text += dec.decode(b)) }));
  const pumped = Promise.all([pump(child.stdout), pump(child.stderr)]);
  return {
    child,
    output: () => text,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* it has exited already */ }
      const { code } = await child.status;
      await pumped;
      return code;
    },
  };
}

/** The env a DaemonSet's pod has for the API server (read by install for the kubeconfig). */
export const SERVICE_ENV = {
  KUBERNETES_SERVICE_HOST: "127.0.0.1",
  KUBERNETES_SERVICE_PORT: "6443",
};

async function until<T>(what: string, run: InstallRun, ms: number, probe: () => Promise<T>) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) {
      throw new Error(`Timed out (${ms} ms) waiting for ${what}:\n${run.output()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

const bridgeConf = (subnet: string) =>
  `{
  "cniVersion": "1.0.0",
  "name": "default-net",
  "plugins": [
    { "type": "bridge", "bridge": "ppndef0", "ipam": { "type": "host-local", "subnet": "${subnet}" } },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
`;

/** Replaces a file by rename, as kubelet swaps a projected token (never in place). */
async function replaceFile(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(`${path}.new`, text);
  await Deno.rename(`${path}.new`, path);
}

/**
 * Drives the flow against a started install. `startupMs` bounds the wait for the first
 * writes (a container takes longer to start than a process).
 */
export async function checkWatchFlow(h: FakeHost, run: InstallRun, startupMs: number) {
  const conflist = `${h.confDir}/00-podplex.conflist`;
  const kubeconfig = `${h.confDir}/podplex.d/podplex.kubeconfig`;
  const token = async () =>
    ((await parseYaml(await Deno.readTextFile(kubeconfig))) as {
      users: { user: { token: string } }[];
    }).users[0].user.token;

  await until("the artifact in bin/", run, startupMs, async () => {
    const entry = await Deno.readTextFile(`${h.bin}/podplex`);
    const v = entryVersion(entry);
    return v && (await Deno.stat(`${h.bin}/podplex.d/${v}/deno`)).isFile;
  });
  assertEquals(await until("the kubeconfig", run, startupMs, token), "tok1");
  assertEquals((await Deno.stat(kubeconfig)).mode! & 0o777, 0o600);
  ok(
    !(await Deno.stat(conflist).then(() => true, () => false)),
    "no conflist before the default network conf exists",
  );

  const first = bridgeConf("10.201.10.0/24");
  await Deno.writeTextFile(`${h.confDir}/10-default.conflist`, first);
  const text = await until("the conflist", run, 3000, () => Deno.readTextFile(conflist));
  ok(text.includes(first.trim()), `the default conf's bytes are wrapped:\n${text}`);
  const list = JSON.parse(text);
  assertEquals(list.cniVersion, "1.0.0");
  assertEquals(list.plugins[0].type, "podplex");
  assertEquals(list.plugins[0].kubeconfig, "/etc/cni/net.d/podplex.d/podplex.kubeconfig");
  assertEquals(list.plugins[0].clusterNetwork, JSON.parse(first));

  await replaceFile(`${h.saDir}/token`, "tok2");
  await until(
    "the rotated token in the kubeconfig (2 s)",
    run,
    2000,
    async () => (await token()) === "tok2",
  );

  const second = bridgeConf("10.201.11.0/24");
  await replaceFile(`${h.confDir}/10-default.conflist`, second);
  await until(
    "the conflist to follow the default conf",
    run,
    3000,
    async () => (await Deno.readTextFile(conflist)).includes(second.trim()),
  );

  assertEquals(await run.stop(), 0, run.output());
  ok(!(await Deno.stat(conflist).then(() => true, () => false)), "SIGTERM removed the conflist");
  ok(!(await Deno.stat(kubeconfig).then(() => true, () => false)), "and the kubeconfig");
  ok((await Deno.stat(`${h.bin}/podplex`)).isFile, "the artifact stays for DELs of running pods");
}

/**
 * A loopback ADD through `<bin>/loopback` (an alias of the installed entry) from `/` with a
 * bare environment, as a runtime on the host execs it; asserts it succeeded with 127.0.0.1/8.
 */
export async function loopbackAddThrough(bin: string, netns: string): Promise<void> {
  const child = new Deno.Command(`${bin}/loopback`, {
    cwd: "/",
    clearEnv: true,
    env: {
      PATH: "/usr/bin:/bin",
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "ppninst1",
      CNI_NETNS: netns,
      CNI_IFNAME: "lo",
      CNI_PATH: bin,
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(`{"cniVersion":"1.0.0","name":"lo","type":"loopback"}`));
  await w.close();
  const res = await child.output();
  const dec = new TextDecoder();
  assertEquals(res.code, 0, dec.decode(res.stdout) + dec.decode(res.stderr));
  assertEquals(JSON.parse(dec.decode(res.stdout)).ips[0].address, "127.0.0.1/8");
}
