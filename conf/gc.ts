/**
 * GC's input (spec 1.1.0): the attachments still in use, which every plugin that releases
 * resources reads the same way.
 *
 * @module
 */
import { CniError, Code } from "./errors.ts";
import { fieldOf as field, isObject } from "./json.ts";
import type { Attachment } from "./types.ts";

type Obj = Record<string, unknown>;

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
    const o = isObject(a) ? a : {};
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
