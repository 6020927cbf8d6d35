/**
 * The container image (Dockerfile), built offline with podman (scripts/image.sh: base images
 * from Debian packages, `podman build --pull=never`), run as the DaemonSet runs it: bind
 * mounts of a temp root standing in for the hostPaths, a fake service-account dir, the API
 * server's env. It must install the artifact, wrap a default conf that appears only after it
 * started, follow a token rotation within 2 s and a default-conf change, and remove its confs
 * on SIGTERM; the artifact it installed then serves CNI calls from the host.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { checkWatchFlow, fakeHost, type InstallRun, SERVICE_ENV } from "./_install_flow.ts";
import { isRoot, run, tempNetns } from "./testutils.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const TAG = "localhost/podplex:test";

/** podman with the private setup of scripts/podman-env.sh. */
function podmanEnv(): Record<string, string> {
  const dir = `${ROOT}/.tools/podman`;
  return {
    CONTAINERS_CONF: `${dir}/containers.conf`,
    CONTAINERS_STORAGE_CONF: `${dir}/storage.conf`,
    CONTAINERS_REGISTRIES_CONF: `${dir}/registries.conf`,
  };
}

/** Starts the image attached; SIGTERM to podman is proxied to the container, as kubelet's. */
function runImage(args: string[], mounts: [string, string][], name: string): InstallRun {
  const child = new Deno.Command("podman", {
    args: [
      "run",
      "--rm",
      "--name",
      name,
      "--network=host",
      "--privileged",
      ...Object.entries(SERVICE_ENV).flatMap(([k, v]) => ["-e", `${k}=${v}`]),
      ...mounts.flatMap(([host, ctr]) => ["-v", `${host}:${ctr}`]),
      TAG,
      ...args,
    ],
    env: podmanEnv(),
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const dec = new TextDecoder();
  const pump = (s: ReadableStream<Uint8Array>) =>
    s.pipeTo(new WritableStream({ write: (b) => void (text += dec.decode(b)) }));
  const pumped = Promise.all([pump(child.stdout), pump(child.stderr)]);
  return {
    output: () => text,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* exited already */ }
      const { code } = await child.status;
      await pumped;
      return code;
    },
  };
}

Deno.test({
  name: "the image, run as the DaemonSet runs it, installs, follows rotations and cleans up",
  ignore: !isRoot,
  async fn() {
    await run("bash", `${ROOT}/scripts/image.sh`, TAG);
    await using h = await fakeHost();
    const name = `ppn-ds-${crypto.randomUUID().slice(0, 8)}`;
    const ds = runImage(
      [
        "--bin-dir",
        "/host/opt/cni/bin",
        "--conf-dir",
        "/host/etc/cni/net.d",
        "--watch",
        "--cleanup-config-on-exit",
      ],
      [
        [h.bin, "/host/opt/cni/bin"],
        [h.confDir, "/host/etc/cni/net.d"],
        [h.saDir, "/var/run/secrets/kubernetes.io/serviceaccount"],
      ],
      name,
    );
    try {
      await checkWatchFlow(h, ds, 60_000);
    } finally {
      await ds.stop();
      await new Deno.Command("podman", { args: ["rm", "-f", name], env: podmanEnv() }).output();
    }

    // What the container installed runs on the host: a loopback ADD through its alias.
    await using ns = await tempNetns("ppn");
    await Deno.symlink("podplex", `${h.bin}/loopback`);
    const add = new Deno.Command(`${h.bin}/loopback`, {
      cwd: "/",
      clearEnv: true,
      env: {
        PATH: "/usr/bin:/bin",
        CNI_COMMAND: "ADD",
        CNI_CONTAINERID: "ppnimage1",
        CNI_NETNS: ns.path,
        CNI_IFNAME: "lo",
        CNI_PATH: h.bin,
      },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = add.stdin.getWriter();
    await w.write(new TextEncoder().encode(`{"cniVersion":"1.0.0","name":"lo","type":"loopback"}`));
    await w.close();
    const res = await add.output();
    const dec = new TextDecoder();
    assertEquals(res.code, 0, dec.decode(res.stdout) + dec.decode(res.stderr));
    assertEquals(JSON.parse(dec.decode(res.stdout)).ips[0].address, "127.0.0.1/8");
  },
});
