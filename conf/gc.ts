/**
 * GC's input (spec 1.1.0): the attachments still in use, which every plugin that releases
 * resources reads the same way.
 *
 * @module
 */
import { CniError, Code } from "./errors.ts";
import type { Attachment } from "./types.ts";

type Obj = Record<string, unknown>;

/** A key's value, matched exactly, else case-insensitively (as Go's JSON decoding does). */
function field(o: Obj, key: string): unknown {
  if (Object.hasOwn(o, key)) return o[key];
  const k = Object.keys(o).find((k) => k.toLowerCase() === key.toLowerCase());
  return k === undefined ? undefined : o[k];
}

/**
 * The `cni.dev/valid-attachments` of a GC conf (libcni also sends the older
 * `cni.dev/attachments`). A missing list is an error, never "nothing is valid": that reading
 * would release every attachment on the node.
 *
 * @throws {CniError} code 7 naming the key or the malformed entry
 */
export function validAttachments(raw: Obj): Attachment[] {
  const list = raw["cni.dev/valid-attachments"] ?? raw["cni.dev/attachments"];
  if (!Array.isArray(list)) {
    throw new CniError(Code.InvalidConfig, `GC needs "cni.dev/valid-attachments" (a list)`);
  }
  return list.map((a, i) => {
    const o = typeof a === "object" && a !== null && !Array.isArray(a) ? a as Obj : {};
    const containerID = field(o, "containerID");
    const ifname = field(o, "ifname");
    if (typeof containerID !== "string" || typeof ifname !== "string") {
      throw new CniError(
        Code.InvalidConfig,
        `Invalid "cni.dev/valid-attachments[${i}]": ${
          JSON.stringify(a)
        } needs containerID and ifname`,
      );
    }
    return { containerID, ifname };
  });
}
