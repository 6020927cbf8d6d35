/**
 * Copies the node artifact podplex runs from into a host's CNI bin dir, so that no call ever
 * sees half a file and "text file busy" cannot happen (Multus #1221): the payload goes to
 * `<bin>/podplex.d/<version>/` through a temp dir and a rename (the version is a hash of its
 * content, so an existing dir of that name is complete), then the entry `<bin>/podplex` is
 * written under a temp name and renamed over the old one. Files being executed are never
 * opened for writing. Old payloads are pruned, keeping the previous one for calls that
 * started before the rename and still load chunks from it.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** The entry's name in the bin dir (the CNI `type`). */
export const ENTRY_NAME = "podplex";
/** The payload folder beside the entry (`bin/node-entry.c`'s `podplex.d/<version>`). */
export const PAYLOAD_DIR = "podplex.d";

/**
 * The payload version an entry names: the native entry's `PODPLEX_ENTRY_PAYLOAD=<version>;`
 * marker (bin/node-entry.c), or an older shell entry's `lib=$dir/podplex.d/<version>` line;
 * undefined when it names none.
 *
 * @param entry the entry file's bytes, or its text decoded leniently (the marker is ASCII)
 */
export function entryVersion(entry: string | Uint8Array): string | undefined {
  const text = typeof entry === "string" ? entry : new TextDecoder("latin1").decode(entry);
  return text.match(/PODPLEX_ENTRY_PAYLOAD=([0-9a-f]+);/)?.[1] ??
    text.match(/^lib=\$dir\/podplex\.d\/([0-9a-f]+)$/m)?.[1];
}

/** The artifact this process runs from. */
export interface Artifact {
  /** The dir holding the entry `podplex` and `podplex.d/`. */
  root: string;
  version: string;
}

/**
 * The artifact this module is bundled in: its chunks sit in `<root>/podplex.d/<version>/`.
 *
 * @returns undefined when running from the sources (a checkout without `deno task build`)
 */
export function runningArtifact(url = import.meta.url): Artifact | undefined {
  const m = fileURLToPath(url).match(/^(.*)\/podplex\.d\/([0-9a-f]+)\/[^/]+$/);
  return m ? { root: m[1], version: m[2] } : undefined;
}

/** What {@linkcode installArtifact} did. */
export interface ArtifactInstall {
  entry: string;
  version: string;
  /** False when that version's payload was already there. */
  copiedPayload: boolean;
  pruned: string[];
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyDir(`${from}/${e.name}`, `${to}/${e.name}`);
    else await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`); // keeps the mode
  }
}

/**
 * Installs `art` into `binDir` (see the module doc), and links each of `aliases` (built-in
 * delegate types) to the entry the same way.
 *
 * @throws {Error} when `binDir` does not exist (a hostPath mount that is missing must not
 *   turn into a new empty dir inside the container)
 */
export async function installArtifact(
  art: Artifact,
  binDir: string,
  aliases: readonly string[] = [],
): Promise<ArtifactInstall> {
  if (!(await Deno.stat(binDir).then((s) => s.isDirectory, () => false))) {
    throw new Error(`Cannot install into "${binDir}": no such directory`);
  }
  const payloads = `${binDir}/${PAYLOAD_DIR}`;
  await Deno.mkdir(payloads, { recursive: true });
  const tag = `.tmp-${Deno.pid}`;
  const target = `${payloads}/${art.version}`;
  let copiedPayload = false;
  if (!(await exists(target))) {
    const tmp = `${payloads}/.${art.version}${tag}`;
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    await copyDir(`${art.root}/${PAYLOAD_DIR}/${art.version}`, tmp);
    await Deno.rename(tmp, target);
    copiedPayload = true;
  }
  const entry = `${binDir}/${ENTRY_NAME}`;
  const tmpEntry = `${binDir}/.${ENTRY_NAME}${tag}`;
  await Deno.copyFile(`${art.root}/${ENTRY_NAME}`, tmpEntry);
  await Deno.chmod(tmpEntry, 0o755);
  await Deno.rename(tmpEntry, entry);
  for (const alias of aliases) {
    const tmp = `${binDir}/.${alias}${tag}`;
    await Deno.remove(tmp).catch(() => {});
    await Deno.symlink(ENTRY_NAME, tmp);
    await Deno.rename(tmp, `${binDir}/${alias}`);
  }
  return { entry, version: art.version, copiedPayload, pruned: await prune(payloads, art) };
}

/**
 * Removes payloads but the current and the newest other one, and temp dirs of installs that
 * died (another pid's); never the current one.
 */
async function prune(payloads: string, art: Artifact): Promise<string[]> {
  const others: { name: string; mtime: number }[] = [];
  const dead: string[] = [];
  for await (const e of Deno.readDir(payloads)) {
    if (e.name === art.version) continue;
    if (e.name.startsWith(".")) {
      if (!e.name.endsWith(`.tmp-${Deno.pid}`)) dead.push(e.name);
      continue;
    }
    const st = await Deno.stat(`${payloads}/${e.name}`);
    others.push({ name: e.name, mtime: st.mtime?.getTime() ?? 0 });
  }
  others.sort((a, b) => b.mtime - a.mtime);
  const gone = [...dead, ...others.slice(1).map((o) => o.name)];
  for (const name of gone) await Deno.remove(`${payloads}/${name}`, { recursive: true });
  return gone;
}
