/**
 * The node artifact's entry (bin/node-entry.c, compiled by `deno task build` as
 * dist/node/podplex): the native program every CNI call starts in. How a runtime reaches it
 * varies, and each way must find the payload of the entry's own build beside its real file:
 * a symlink named after a built-in type (/opt/cni/bin/host-local -> podplex), an entry an
 * install renamed over while a call was starting (the kernel then names the file
 * "<path> (deleted)"), and a host without /proc mounted (argv[0], by path or through PATH).
 */
import { deepStrictEqual as assertEquals, match } from "node:assert/strict";
import { entryVersion } from "../cli/_install_artifact.ts";
import { execWith } from "./testutils.ts";

const DIST = new URL("../dist/node", import.meta.url).pathname;
const isRoot = Deno.uid() === 0;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

const run = execWith;

/** A copy of the built artifact in a temp dir: `<dir>/bin/podplex`, `<dir>/bin/podplex.d/`. */
async function install(): Promise<{ dir: string; entry: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "ppentry" });
  await Deno.mkdir(`${dir}/bin`);
  const cp = await new Deno.Command("cp", { args: ["-a", `${DIST}/.`, `${dir}/bin/`] }).output();
  if (!cp.success) throw new Error(`cp: ${new TextDecoder().decode(cp.stderr)}`);
  return {
    dir,
    entry: `${dir}/bin/podplex`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

// A CHECK the meta-plugin and host-local answer differently: podplex knows no attachment of
// the container (code 3), host-local misses its "ipam" key (code 7).
const CONF = JSON.stringify({ cniVersion: "1.0.0", name: "ppentry", type: "podplex" });
const CHECK = {
  PATH: "/usr/bin:/bin",
  CNI_COMMAND: "CHECK",
  CNI_CONTAINERID: "ppentry",
  CNI_NETNS: "/nonexistent",
  CNI_IFNAME: "eth0",
  CNI_PATH: "/usr/lib/cni",
  PODPLEX_SOCKET: "/nonexistent",
};
const codeOf = (r: Run) => (JSON.parse(r.stdout) as { code: number }).code;

Deno.test("the entry carries the build id of the payload it runs", async () => {
  const id = entryVersion(await Deno.readFile(`${DIST}/podplex`));
  const payloads = [...Deno.readDirSync(`${DIST}/podplex.d`)].map((e) => e.name);
  assertEquals(payloads, [id]);
});

Deno.test("called by a symlink named after a built-in type, the entry runs that built-in", async () => {
  await using a = await install();
  await Deno.mkdir(`${a.dir}/links`);
  await Deno.symlink("../bin/podplex", `${a.dir}/links/host-local`);
  const meta = await run(a.entry, [], CHECK, CONF);
  const hostLocal = await run(`${a.dir}/links/host-local`, [], CHECK, CONF);
  assertEquals([meta.code, codeOf(meta)], [1, 3], meta.stdout + meta.stderr);
  assertEquals([hostLocal.code, codeOf(hostLocal)], [1, 7], hostLocal.stdout + hostLocal.stderr);
  match(hostLocal.stdout, /missing \\"ipam\\" key/);
});

Deno.test({
  name: "an entry renamed over after its exec began still runs the payload of its own build",
  async fn() {
    await using a = await install();
    // What an upgrade does: the next entry is renamed over this one. A call that was exec'd
    // from the old file has /proc/self/exe = "<entry> (deleted)", and its payload stays
    // beside it until the install prunes it.
    await Deno.writeTextFile(`${a.dir}/next`, "#!/bin/sh\necho the next entry\n");
    await Deno.chmod(`${a.dir}/next`, 0o755);
    const py = [
      "import os, sys",
      "fd = os.open(sys.argv[1], os.O_RDONLY)",
      "os.rename(sys.argv[2], sys.argv[1])",
      "os.execve(f'/proc/self/fd/{fd}', ['podplex', '--version'], {'PATH': '/usr/bin:/bin'})",
    ].join("\n");
    const r = await run("python3", ["-c", py, a.entry, `${a.dir}/next`], { PATH: "/usr/bin:/bin" });
    assertEquals(r.code, 0, r.stderr);
    match(r.stdout, /^podplex \d+\.\d+\.\d+: a CNI meta-plugin/);
    // And the file at the path is the next entry now.
    match((await run(a.entry, [], { PATH: "/usr/bin:/bin" })).stdout, /the next entry/);
  },
});

Deno.test({
  name: "without /proc the entry finds itself from argv[0], by path and through PATH",
  ignore: !isRoot,
  async fn() {
    await using a = await install();
    await Deno.mkdir(`${a.dir}/links`);
    await Deno.symlink("../bin/podplex", `${a.dir}/links/host-local`);
    const script = [
      "mount -t tmpfs ppentry /proc || exit 99",
      `"${a.entry}" --version || exit 1`,
      `PATH="${a.dir}/links:/usr/bin:/bin" host-local --version || exit 2`,
      `PATH="${a.dir}/none:/usr/bin:/bin"; "${a.dir}/links/host-local" --version || exit 3`,
    ].join("\n");
    const r = await run("unshare", ["-m", "--propagation", "private", "sh", "-c", script], {
      PATH: "/usr/bin:/bin",
    });
    assertEquals(r.code, 0, r.stdout + r.stderr);
    assertEquals(r.stdout.split("\n").filter((l) => l.startsWith("podplex ")).length, 3);
  },
});

Deno.test("an entry whose payload is gone says so and exits 127", async () => {
  await using a = await install();
  await Deno.remove(`${a.dir}/bin/podplex.d`, { recursive: true });
  const r = await run(a.entry, ["--version"], { PATH: "/usr/bin:/bin" });
  assertEquals(r.code, 127);
  match(r.stderr, /podplex: cannot run ".*\/podplex\.d\/[0-9a-f]+\/deno": No such file/);
});
