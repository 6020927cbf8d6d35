/**
 * What `bin/podplex` runs, frozen for the run. Other engineers rebuild `dist/` while they work
 * (`deno task build` replaces `dist/node/`), and a bench whose samples mix two builds would
 * lie. So the bench copies the launcher and the node artifact into its temp dir
 * (`<tmp>/podplex/bin/podplex`, `<tmp>/podplex/dist/node/`): the launcher finds its root from
 * its own path, so this copy is exec'd exactly as a runtime execs `bin/podplex` of a checkout.
 *
 * @module
 */
import { entryVersion } from "../cli/_install_artifact.ts";

const root = new URL("..", import.meta.url).pathname;

/** The flags the artifact's entry (bin/node-entry.c) runs the bundle with. */
export const DENO_FLAGS = [
  "run",
  "--allow-all",
  "--no-config",
  "--no-prompt",
  "--cached-only",
  "--no-remote",
  "--no-npm",
  "--quiet",
];

/** The frozen build the bench execs. */
export interface BuildInfo {
  /** The launcher copy runtimes' execs go to (`bin/podplex`, which execs the artifact). */
  bin: string;
  /** The artifact's own entry (`dist/node/podplex`), what a node's runtime execs. */
  artifact: string;
  /** The artifact's payload dir (`dist/node/podplex.d/<version>`). */
  payload: string;
  /** The entry the artifact runs (absolute): `<payload>/main.js`. */
  entry: string;
  /** The Deno binary the artifact ships. */
  deno: string;
  /** Always "code-split" (main.js + chunks), as `scripts/artifact.sh` bundles. */
  kind: "code-split";
  /** Total bytes of the JS files of the build. */
  bytes: number;
  files: number;
  /** Total bytes of the artifact (runtime, bundle, libnl copies, client). */
  artifactBytes: number;
}

/** The payload version named in the artifact's entry, or undefined when there is none. */
async function version(dir: string): Promise<string | undefined> {
  try {
    const text = await Deno.readFile(`${dir}/podplex`);
    return entryVersion(text);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

async function copyOnce(dest: string): Promise<BuildInfo | undefined> {
  const before = await version(`${root}dist/node`);
  if (!before) return undefined;
  await Deno.remove(dest, { recursive: true }).catch(() => {});
  await Deno.mkdir(`${dest}/bin`, { recursive: true });
  await Deno.mkdir(`${dest}/dist`);
  await Deno.copyFile(`${root}bin/podplex`, `${dest}/bin/podplex`);
  await Deno.chmod(`${dest}/bin/podplex`, 0o755);
  const cp = await new Deno.Command("cp", { args: ["-a", `${root}dist/node`, `${dest}/dist/`] })
    .output();
  if (!cp.success || (await version(`${dest}/dist/node`)) !== before) return undefined;
  if ((await version(`${root}dist/node`)) !== before) return undefined; // rebuilt meanwhile
  const payload = `${dest}/dist/node/podplex.d/${before}`;
  let bytes = 0;
  let files = 0;
  let artifactBytes = (await Deno.stat(`${dest}/dist/node/podplex`)).size;
  for (const e of Deno.readDirSync(payload)) {
    const size = (await Deno.stat(`${payload}/${e.name}`)).size;
    artifactBytes += size;
    if (e.name.endsWith(".js")) (bytes += size, files++);
  }
  return {
    bin: `${dest}/bin/podplex`,
    artifact: `${dest}/dist/node/podplex`,
    payload,
    entry: `${payload}/main.js`,
    deno: `${payload}/deno`,
    kind: "code-split",
    bytes,
    files,
    artifactBytes,
  };
}

/**
 * Copies the current build to `dest`, retrying while someone is rebuilding it.
 *
 * @throws {Error} when there is no artifact in dist/node/
 */
export async function snapshotBuild(dest: string): Promise<BuildInfo> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const info = await copyOnce(dest);
    if (info) return info;
    await new Promise((r) => setTimeout(r, 1500));
  }
  throw new Error("No stable artifact in dist/node/: run `deno task build`");
}
