/**
 * This node's pod states for the policy controller, read often (after each ADD and DEL, on
 * each resync) and cheaply: a state file whose mtime and size did not move since the last
 * read is not parsed again. Every state is written by a rename (meta/state.ts), so a changed
 * state is a new inode with a new mtime.
 *
 * @module
 */
import { createStateStore, type PodState } from "../../meta/state.ts";
import type { Logger } from "../controller.ts";

interface Held {
  stamp: string;
  state: PodState | null;
}

/** The container and interface a state file's name says (`<id>@<ifname%>.json`). */
function idOf(name: string): { containerId: string; ifname: string } | undefined {
  const at = name.indexOf("@");
  if (at <= 0 || !name.endsWith(".json") || name.startsWith(".")) return undefined;
  try {
    return { containerId: name.slice(0, at), ifname: decodeURIComponent(name.slice(at + 1, -5)) };
  } catch {
    return undefined;
  }
}

/**
 * A reader of every state in `dirs`; a directory that does not exist holds none.
 *
 * @example
 * ```ts
 * const read = stateReader(["/var/lib/cni/podplex"], console.log);
 * const states = await read();
 * ```
 */
export function stateReader(dirs: string[], warn: Logger): () => Promise<PodState[]> {
  const held = new Map<string, Held>();
  return async () => {
    const out: PodState[] = [];
    const seen = new Set<string>();
    for (const dir of dirs) {
      const store = createStateStore(dir, { warn });
      let names: string[] = [];
      try {
        for await (const e of Deno.readDir(dir)) if (e.isFile) names.push(e.name);
      } catch {
        names = [];
      }
      for (const name of names.sort()) {
        const id = idOf(name);
        if (!id) continue;
        const path = `${dir}/${name}`;
        const st = await Deno.stat(path).catch(() => null);
        if (!st) continue;
        seen.add(path);
        const stamp = `${st.mtime?.getTime()}:${st.size}:${st.ino}`;
        let h = held.get(path);
        if (!h || h.stamp !== stamp) {
          h = { stamp, state: await store.load(id.containerId, id.ifname).catch(() => null) };
          held.set(path, h);
        }
        if (h.state) out.push(h.state);
      }
    }
    for (const path of held.keys()) if (!seen.has(path)) held.delete(path);
    return out;
  };
}
