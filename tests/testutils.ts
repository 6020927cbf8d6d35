/**
 * Helpers for tests that touch the kernel: throwaway `pp*` network namespaces that are
 * removed even when the test fails, and `ip -j` readers to check the kernel's state with a
 * tool podplex does not share code with.
 *
 * @module
 */

/** Whether the tests run as root (kernel tests are skipped otherwise, saying so). */
export const isRoot = Deno.uid() === 0;

/** Whether the system's libnftables (Debian's `libnftables1`), which policy enforcement opens, is there. */
export const haveLibnftables = [
  "/usr/lib/x86_64-linux-gnu/libnftables.so.1",
  "/usr/lib/aarch64-linux-gnu/libnftables.so.1",
].some((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});

/** A short random name with the `pp` prefix (at most 15 bytes, a valid ifname). */
export function ppName(tag = ""): string {
  const rand = crypto.getRandomValues(new Uint8Array(4));
  const hex = Array.from(rand, (b) => b.toString(16).padStart(2, "0")).join("");
  return `pp${tag.slice(0, 5)}${hex}`;
}

/** Runs a command; throws with its stderr when it fails. */
export async function run(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr);
    throw new Error(`"${cmd} ${args.join(" ")}" failed (${out.code}): ${err.trim()}`);
  }
  return text;
}

/** What {@linkcode execWith} saw: the exit code and both outputs as text. */
export interface Exec {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `cmd` as a runtime execs a plugin: only `env` in its environment, `stdin` written and
 * closed.
 */
export async function execWith(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  stdin = "",
): Promise<Exec> {
  const child = new Deno.Command(cmd, {
    args,
    env,
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(stdin));
  await w.close().catch(() => {});
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Runs a command and reports whether it succeeded, without throwing. */
export async function tryRun(cmd: string, ...args: string[]): Promise<boolean> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output();
  return out.success;
}

/** A throwaway netns: `name`, its `path`, and an async disposer that deletes it. */
export interface TestNetns extends AsyncDisposable {
  name: string;
  path: string;
}

/**
 * Creates a throwaway netns named `pp...` with `ip netns add`, loopback up.
 * Use with `await using ns = await tempNetns();` so it is deleted even on failure.
 */
export async function tempNetns(tag = "ns"): Promise<TestNetns> {
  const name = ppName(tag);
  await run("ip", "netns", "add", name);
  await run("ip", "-n", name, "link", "set", "lo", "up");
  return {
    name,
    path: `/run/netns/${name}`,
    async [Symbol.asyncDispose]() {
      await tryRun("ip", "netns", "delete", name);
    },
  };
}

/** `ip -j [-n ns] <args>` parsed (e.g. `ipJson(ns, "addr", "show", "dev", "eth0")`). */
export async function ipJson(
  ns: string | undefined,
  ...args: string[]
): Promise<Array<Record<string, unknown>>> {
  const pre = ns ? ["-n", ns] : [];
  const text = await run("ip", "-j", ...pre, ...args);
  return text.trim() ? JSON.parse(text) : [];
}

/** Whether a link exists (in `ns`, or in the host netns). */
export async function linkExists(ns: string | undefined, name: string): Promise<boolean> {
  const pre = ns ? ["-n", ns] : [];
  return await tryRun("ip", ...pre, "link", "show", "dev", name);
}

/** A throwaway directory removed on dispose. */
export async function tempDir(prefix = "pp"): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

/** A temp networks dir of bridge + host-local networks, and where their state would go. */
export interface BridgeNetworks extends AsyncDisposable {
  dir: string;
  networksDir: string;
  stateDir: string;
  dataDir: string;
  /** The pp bridge of each network, in order (removed on dispose). */
  bridges: string[];
}

/**
 * Writes `count` bridge + host-local networks `net-a`, `net-b`... in namespace `default`,
 * network i on subnet `<subnetPrefix>.<i>.0/24`, each on its own pp bridge.
 */
export async function bridgeNetworks(count: number, subnetPrefix: string): Promise<BridgeNetworks> {
  const dir = await Deno.makeTempDir({ prefix: "ppnets" });
  const networksDir = `${dir}/networks.d`;
  const dataDir = `${dir}/leases`;
  await Deno.mkdir(`${networksDir}/default`, { recursive: true });
  const bridges: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `net-${String.fromCharCode(97 + i)}`;
    const br = ppName("b");
    bridges.push(br);
    await Deno.writeTextFile(
      `${networksDir}/default/${name}.json`,
      JSON.stringify({
        cniVersion: "1.0.0",
        name,
        type: "bridge",
        bridge: br,
        ipam: { type: "host-local", subnet: `${subnetPrefix}.${i}.0/24`, dataDir },
      }),
    );
  }
  return {
    dir,
    networksDir,
    stateDir: `${dir}/state`,
    dataDir,
    bridges,
    async [Symbol.asyncDispose]() {
      for (const br of bridges) await tryRun("ip", "link", "del", br);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Every host-local lease under `dataDir`, as `<network>/<ip>` (bookkeeping files excluded). */
export function leaseFiles(dataDir: string): string[] {
  const out: string[] = [];
  try {
    for (const net of Deno.readDirSync(dataDir)) {
      for (const f of Deno.readDirSync(`${dataDir}/${net.name}`)) {
        if (/^[0-9a-f.:]+$/.test(f.name)) out.push(`${net.name}/${f.name}`);
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

/** The file names in podplex's `stateDir` (none when it does not exist). */
export function stateFiles(stateDir: string): string[] {
  try {
    return Array.from(Deno.readDirSync(stateDir), (e) => e.name).sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}
