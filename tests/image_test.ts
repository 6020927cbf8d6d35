/**
 * The container image (Dockerfile), built offline with podman (scripts/image.sh: base images
 * from Debian packages, `podman build --pull=never`), run as the DaemonSet runs it: bind
 * mounts of a temp root standing in for the hostPaths, a fake service-account dir, the API
 * server's env. It must install the artifact, wrap a default conf that appears only after it
 * started, follow a token rotation within 2 s and a default-conf change, and remove its confs
 * on SIGTERM; the artifact it installed then serves CNI calls from the host.
 */
import { SA_DIR } from "../clients/k8s/client.ts";
import { installContainer, loadManifests, type Obj } from "./_deploy.ts";
import {
  checkWatchFlow,
  type FakeHost,
  fakeHost,
  type InstallRun,
  loopbackAddThrough,
  SERVICE_ENV,
  watched,
} from "./_install_flow.ts";
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

/**
 * The DaemonSet's install container as `podman run` arguments for the fake host `h`: its
 * command, args and mounts, hostPaths mapped into `h` (the CNI dirs onto h's, the others onto
 * fresh dirs: never the real host's), its ConfigMaps written out, the service account.
 */
async function asDaemonSetRuns(h: FakeHost): Promise<{ run: string[]; image: string[] }> {
  const c = installContainer(await loadManifests());
  const hostDirs: Record<string, string> = { "/opt/cni/bin": h.bin, "/etc/cni/net.d": h.confDir };
  const run: string[] = ["--entrypoint", c.container.command[0]];
  for (const vm of c.container.volumeMounts as Obj[]) {
    const vol = c.volumes.get(vm.name)!;
    let src: string;
    if (vol.hostPath) {
      src = hostDirs[vol.hostPath.path] ?? `${h.root}/host${vol.hostPath.path}`;
    } else if (vol.configMap) {
      src = `${h.root}/configmap-${vol.configMap.name}`;
      const cm = (await loadManifests()).get(`ConfigMap/${vol.configMap.name}`)!;
      for (const [k, v] of Object.entries(cm.data as Record<string, string>)) {
        await Deno.mkdir(src, { recursive: true });
        await Deno.writeTextFile(`${src}/${k}`, v);
      }
    } else throw new Error(`Cannot stand in for volume "${vm.name}"`);
    await Deno.mkdir(src, { recursive: true });
    run.push("-v", `${src}:${vm.mountPath}${vm.readOnly ? ":ro" : ""}`);
  }
  run.push("-v", `${h.saDir}:${SA_DIR}:ro`);
  if (c.container.securityContext?.privileged) run.push("--privileged");
  if (c.pod.hostNetwork) run.push("--network=host");
  return { run, image: [...c.container.command.slice(1), ...c.container.args] };
}

/** Starts the image attached; SIGTERM to podman is proxied to the container, as kubelet's. */
function runImage(ds: { run: string[]; image: string[] }, name: string): InstallRun {
  const child = new Deno.Command("podman", {
    args: [
      "run",
      "--rm",
      "--name",
      name,
      ...Object.entries(SERVICE_ENV).flatMap(([k, v]) => ["-e", `${k}=${v}`]),
      ...ds.run,
      TAG,
      ...ds.image,
    ],
    env: podmanEnv(),
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return watched(child);
}

Deno.test({
  name: "the image, run as the DaemonSet runs it, installs, follows rotations and cleans up",
  ignore: !isRoot,
  async fn() {
    await run("bash", `${ROOT}/scripts/image.sh`, TAG);
    await using h = await fakeHost();
    const name = `ppn-ds-${crypto.randomUUID().slice(0, 8)}`;
    const ds = runImage(await asDaemonSetRuns(h), name);
    try {
      await checkWatchFlow(h, ds, 60_000);
    } finally {
      await ds.stop();
      await new Deno.Command("podman", { args: ["rm", "-f", name], env: podmanEnv() }).output();
    }

    // Thick mode runs ipMasq's and macspoofchk's firewall calls in this image.
    for (const tool of ["iptables", "nft"]) {
      const o = await new Deno.Command("podman", {
        args: ["run", "--rm", "--network=host", "--entrypoint", tool, TAG, "--version"],
        env: podmanEnv(),
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!o.success) {
        throw new Error(`the image has no working ${tool}: ${new TextDecoder().decode(o.stderr)}`);
      }
    }

    // What the container installed runs on the host: a loopback ADD through its alias.
    await using ns = await tempNetns("ppn");
    await Deno.symlink("podplex", `${h.bin}/loopback`);
    await loopbackAddThrough(h.bin, ns.path);
  },
});
