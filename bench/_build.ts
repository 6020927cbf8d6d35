/**
 * What `bin/podplex` runs, frozen for the run. Other engineers rebuild `dist/` while they work
 * (`deno task test` starts with `rm -rf dist`), and a bench whose samples mix two builds, or
 * fall back to the sources mid-run, would lie. So the bench copies the launcher and the build
 * into its temp dir (`<tmp>/podplex/bin/podplex`, `<tmp>/podplex/dist/`, `.tools` linked):
 * the launcher finds its root from its own path, so this copy is exec'd exactly as a runtime
 * execs an installed `bin/podplex`.
 *
 * @module
 */

const root = new URL("..", import.meta.url).pathname;

/** The frozen build the bench execs. */
export interface BuildInfo {
  /** The launcher copy runtimes' execs go to. */
  bin: string;
  /** The entry the launcher runs (absolute). */
  entry: string;
  /** "code-split" (dist/main.js + chunks) or "single" (dist/podplex.js), as bin/podplex prefers. */
  kind: "code-split" | "single";
  /** Total bytes of the JS files of the build. */
  bytes: number;
  files: number;
}

// The launcher's order of preference (bin/podplex).
const ENTRIES: [string, BuildInfo["kind"]][] = [["main.js", "code-split"], [
  "podplex.js",
  "single",
]];

function distState(): { entry: string; kind: BuildInfo["kind"]; stamp: string } | undefined {
  for (const [file, kind] of ENTRIES) {
    try {
      const names = Array.from(Deno.readDirSync(`${root}dist`), (e) => e.name).sort();
      if (!names.includes(file)) continue;
      const stamp = names.map((n) => `${n}:${Deno.statSync(`${root}dist/${n}`).mtime?.getTime()}`)
        .join();
      return { entry: file, kind, stamp };
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  return undefined;
}

async function copyOnce(dest: string): Promise<BuildInfo | undefined> {
  const before = distState();
  if (!before) return undefined;
  await Deno.remove(dest, { recursive: true }).catch(() => {});
  await Deno.mkdir(`${dest}/bin`, { recursive: true });
  await Deno.mkdir(`${dest}/dist`);
  await Deno.copyFile(`${root}bin/podplex`, `${dest}/bin/podplex`);
  await Deno.chmod(`${dest}/bin/podplex`, 0o755);
  await Deno.symlink(`${root}.tools`, `${dest}/.tools`);
  let bytes = 0;
  let files = 0;
  for (const e of Deno.readDirSync(`${root}dist`)) {
    await Deno.copyFile(`${root}dist/${e.name}`, `${dest}/dist/${e.name}`);
    bytes += e.name.endsWith(".js") ? (await Deno.stat(`${dest}/dist/${e.name}`)).size : 0;
    files++;
  }
  if (distState()?.stamp !== before.stamp) return undefined; // rebuilt while we copied
  return {
    bin: `${dest}/bin/podplex`,
    entry: `${dest}/dist/${before.entry}`,
    kind: before.kind,
    bytes,
    files,
  };
}

/**
 * Copies the current build to `dest`, retrying while someone is rebuilding it.
 *
 * @throws {Error} when there is no build in dist/ (bin/podplex would run the sources)
 */
export async function snapshotBuild(dest: string): Promise<BuildInfo> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const info = await copyOnce(dest);
    if (info) return info;
    await new Promise((r) => setTimeout(r, 1500));
  }
  throw new Error(
    "No stable build in dist/ (bin/podplex would run the sources): run `deno task build`",
  );
}
