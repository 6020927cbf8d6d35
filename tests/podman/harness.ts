/**
 * A podman 4.x (CNI backend) that is isolated from the host's configuration and storage, for
 * tests where a real CNI client execs `bin/podplex`.
 *
 * Everything podman reads or writes lives in one temp dir: `CONTAINERS_CONF` (only that file
 * is read when the variable is set), `CONTAINERS_STORAGE_CONF` (vfs graphroot and runroot),
 * `tmp_dir` (podman's runtime dir and locks), the events log, the CNI config dir holding the
 * podplex conflist, and a CNI plugin dir whose `podplex` runs `<repo>/bin/podplex`. What stays
 * on the host while a container runs: its netns under /run/netns (podman removes it) and
 * libcni's result cache under /var/lib/cni/results (libcni removes it after DEL); both are
 * checked by the tests.
 *
 * @module
 */
import { ppName, run, tryRun } from "../testutils.ts";

/** The repo root, from this file's location (tests/podman/harness.ts). */
export const REPO_ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/** The reference plugins' dir (Debian's containernetworking-plugins). */
export const REFERENCE_PLUGINS = "/usr/lib/cni";

/** libcni's result cache dir as podman 4.x uses it (not configurable through containers.conf). */
export const LIBCNI_RESULTS = "/var/lib/cni/results";

/** The image every test runs: a busybox-static rootfs imported with `podman import`. */
export const IMAGE = "localhost/ppbusybox:latest";

/** Why the podman tests cannot run here, or undefined when they can. */
export async function podmanMissing(): Promise<string | undefined> {
  if (Deno.uid() !== 0) return "the podman tests need root";
  for (const bin of ["podman", "runc", "conmon"]) {
    if (!(await tryRun("sh", "-c", `command -v ${bin}`))) {
      return `"${bin}" is not installed (scripts/setup.sh installs podman runc busybox-static)`;
    }
  }
  if (!(await exists("/bin/busybox"))) {
    return `"/bin/busybox" is missing (the busybox-static package provides it)`;
  }
  return undefined;
}

/**
 * A warning when the node artifact (`dist/node/`, which bin/podplex execs) is older than a
 * source file: podman would then exercise stale code. `deno task test` builds it first.
 */
export async function staleBuildWarning(): Promise<string | undefined> {
  let built: number;
  try {
    built = (await Deno.stat(`${REPO_ROOT}/dist/node/podplex`)).mtime?.getTime() ?? 0;
  } catch {
    return 'there is no dist/node/ (bin/podplex fails): run "deno task build" first';
  }
  for (const dir of ["cli", "conf", "delegates", "ffi", "meta"]) {
    const newer = await newestTs(`${REPO_ROOT}/${dir}`);
    if (newer && newer.mtime > built) {
      return `dist/node/ is older than ${newer.path}: run "deno task build" first`;
    }
  }
  return undefined;
}

async function newestTs(dir: string): Promise<{ path: string; mtime: number } | undefined> {
  let best: { path: string; mtime: number } | undefined;
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    const found = e.isDirectory
      ? await newestTs(path)
      : e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")
      ? { path, mtime: (await Deno.stat(path)).mtime?.getTime() ?? 0 }
      : undefined;
    if (found && (!best || found.mtime > best.mtime)) best = found;
  }
  return best;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** The output of one podman call, whether it succeeded or not. */
export interface PodmanOutput {
  success: boolean;
  code: number;
  stdout: string;
  stderr: string;
}

/** A throwaway podman setup; disposing it removes every container, file and bridge it made. */
export interface PodmanEnv extends AsyncDisposable {
  /** The temp dir holding everything. */
  dir: string;
  /** Where the podplex conflist goes (`network_config_dir`). */
  netConfDir: string;
  /** The CNI plugin dir holding `podplex` (see installPodplex). */
  pluginDir: string;
  /** podplex's `networksDir`. */
  networksDir: string;
  /** podplex's `stateDir`. */
  stateDir: string;
  /** host-local's `dataDir` for every network. */
  dataDir: string;
  /** podplex's `logFile`. */
  logFile: string;
  /** Bridges the tests create through podplex; deleted on dispose. */
  bridges: string[];
  /** Runs podman with the isolated config; never throws on a non-zero exit. */
  podman(...args: string[]): Promise<PodmanOutput>;
  /** Runs podman and throws with its stderr when it fails. */
  podmanOk(...args: string[]): Promise<string>;
  /** The CNI calls podman made to podplex, in order (`ADD eth0 <containerId>`...). */
  calls(): Promise<string[]>;
}

function containersConf(dir: string, netConfDir: string, pluginDir: string): string {
  return [
    "[containers]",
    // The host's default ulimits are larger than this sandbox allows runc to set.
    'default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]',
    "",
    "[engine]",
    'runtime = "runc"',
    'cgroup_manager = "cgroupfs"',
    'events_logger = "file"',
    `events_logfile_path = "${dir}/events.log"`,
    `tmp_dir = "${dir}/tmp"`,
    `volume_path = "${dir}/volumes"`,
    "",
    "[network]",
    'network_backend = "cni"',
    // The reference plugins too, so that a conflist may chain portmap etc. after podplex.
    `cni_plugin_dirs = ["${pluginDir}", "${REFERENCE_PLUGINS}"]`,
    `network_config_dir = "${netConfDir}"`,
    "",
  ].join("\n");
}

function storageConf(dir: string): string {
  // vfs: no overlay mount, so it works whatever filesystem the temp dir is on.
  return [
    "[storage]",
    'driver = "vfs"',
    `graphroot = "${dir}/storage"`,
    `runroot = "${dir}/runroot"`,
    "",
  ].join("\n");
}

/**
 * Puts `podplex` in the CNI plugin dir: a two-line tracer that appends the verb, CNI_IFNAME
 * and CNI_CONTAINERID to `calls.log`, then execs (same argv0, stdin and env) a symlink
 * `launcher/podplex -> <repo>/bin/podplex`. The tracer exists because podplex's own log has
 * no line per call, and the rollback test must see that podman DELs after the failed ADD.
 */
async function installPodplex(dir: string, pluginDir: string): Promise<void> {
  await Deno.mkdir(`${dir}/launcher`);
  await Deno.symlink(`${REPO_ROOT}/bin/podplex`, `${dir}/launcher/podplex`);
  const tracer = [
    "#!/bin/sh",
    `echo "$CNI_COMMAND $CNI_IFNAME $CNI_CONTAINERID" >> '${dir}/calls.log'`,
    `exec '${dir}/launcher/podplex' "$@"`,
    "",
  ].join("\n");
  await Deno.writeTextFile(`${pluginDir}/podplex`, tracer, { mode: 0o755 });
}

async function runPodman(env: Record<string, string>, args: string[]): Promise<PodmanOutput> {
  const out = await new Deno.Command("podman", {
    args,
    env,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return {
    success: out.success,
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

/**
 * Creates the isolated podman setup and imports the busybox image into its storage.
 * Dispose it (`await using`) to remove containers, storage, temp files and `bridges`.
 */
export async function createPodmanEnv(): Promise<PodmanEnv> {
  const dir = await Deno.makeTempDir({ prefix: "pppodman" });
  const netConfDir = `${dir}/net.d`;
  const pluginDir = `${dir}/cni-bin`;
  for (const d of [netConfDir, pluginDir, `${dir}/tmp`, `${dir}/networks.d`]) {
    await Deno.mkdir(d, { recursive: true });
  }
  await installPodplex(dir, pluginDir);
  await Deno.writeTextFile(`${dir}/containers.conf`, containersConf(dir, netConfDir, pluginDir));
  await Deno.writeTextFile(`${dir}/storage.conf`, storageConf(dir));
  const procEnv: Record<string, string> = {
    CONTAINERS_CONF: `${dir}/containers.conf`,
    CONTAINERS_STORAGE_CONF: `${dir}/storage.conf`,
    // Not the host's registries or policy: the image is local and never pulled.
    CONTAINERS_REGISTRIES_CONF: `${dir}/registries.conf`,
  };
  await Deno.writeTextFile(`${dir}/registries.conf`, "");
  const bridges: string[] = [];
  const podman = (...args: string[]) => runPodman(procEnv, args);
  const env: PodmanEnv = {
    dir,
    netConfDir,
    pluginDir,
    networksDir: `${dir}/networks.d`,
    stateDir: `${dir}/state`,
    dataDir: `${dir}/leases`,
    logFile: `${dir}/podplex.log`,
    bridges,
    podman,
    async podmanOk(...args: string[]) {
      const out = await podman(...args);
      if (!out.success) {
        throw new Error(`"podman ${args.join(" ")}" failed (${out.code}): ${out.stderr.trim()}`);
      }
      return out.stdout;
    },
    async calls() {
      const text = await Deno.readTextFile(`${dir}/calls.log`).catch(() => "");
      return text.split("\n").filter((l) => l);
    },
    async [Symbol.asyncDispose]() {
      await disposeEnv(env);
    },
  };
  try {
    await importBusybox(env);
  } catch (e) {
    await disposeEnv(env);
    throw e;
  }
  return env;
}

async function disposeEnv(env: PodmanEnv): Promise<void> {
  // rm -f stops containers (podman DELs their networks), then the storage goes with the dir.
  await env.podman("rm", "--all", "--force", "--time", "0");
  await env.podman("rmi", "--all", "--force");
  // vfs layers may hold read-only dirs and podman may leave mounts: unmount before removal.
  await tryRun("sh", "-c", `grep -o ' ${env.dir}/[^ ]*' /proc/mounts | xargs -r -n1 umount -l`);
  for (const br of env.bridges) await tryRun("ip", "link", "del", br);
  await Deno.remove(env.dir, { recursive: true }).catch(() => {});
}

/** Builds a tiny rootfs (busybox + its applet links) and `podman import`s it as IMAGE. */
async function importBusybox(env: PodmanEnv): Promise<void> {
  const root = `${env.dir}/rootfs`;
  for (const d of ["bin", "etc", "proc", "sys", "dev", "tmp", "run"]) {
    await Deno.mkdir(`${root}/${d}`, { recursive: true });
  }
  await Deno.copyFile("/bin/busybox", `${root}/bin/busybox`);
  await Deno.chmod(`${root}/bin/busybox`, 0o755);
  const applets = (await run("/bin/busybox", "--list")).split("\n").filter((a) => a);
  for (const a of applets) {
    if (a !== "busybox") await Deno.symlink("busybox", `${root}/bin/${a}`);
  }
  const tar = `${env.dir}/rootfs.tar`;
  await run("tar", "-C", root, "-cf", tar, ".");
  await env.podmanOk("import", "--change", "CMD=/bin/sh", tar, IMAGE);
  await Deno.remove(root, { recursive: true });
  await Deno.remove(tar);
}

/** A new bridge name with the `pp` prefix, remembered for deletion on dispose. */
export function newBridge(env: PodmanEnv): string {
  const br = ppName("pb");
  env.bridges.push(br);
  return br;
}
