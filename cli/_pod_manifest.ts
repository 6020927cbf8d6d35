/**
 * The pod manifest `pod up --annotations FILE` reads: its metadata (annotations, labels,
 * name, namespace).
 *
 * @module
 */
import { readRequiredTextSync } from "../conf/bounded_read.ts";
import { CniError, Code } from "../conf/errors.ts";
import { parseYaml } from "../conf/yaml.ts";

/** What `--annotations` gives: a manifest's metadata. */
export interface Manifest {
  name?: string;
  namespace?: string;
  annotations: Record<string, string>;
  labels?: Record<string, string>;
}

/**
 * Reads a pod manifest (YAML or JSON) for its metadata.
 *
 * @throws {CniError} 5 when unreadable, 7 when annotations are not a string map
 */
export async function readManifest(path: string): Promise<Manifest> {
  const text = readRequiredTextSync(path, { what: "the pod manifest" });
  let doc: unknown;
  try {
    doc = await parseYaml(text);
  } catch (e) {
    throw new CniError(Code.InvalidConfig, `Invalid YAML in "${path}": ${(e as Error).message}`);
  }
  const meta = (doc as { metadata?: Record<string, unknown> } | null)?.metadata ?? {};
  const annotations = meta.annotations ?? {};
  if (
    typeof annotations !== "object" || Array.isArray(annotations) ||
    Object.values(annotations).some((v) => typeof v !== "string")
  ) {
    throw new CniError(
      Code.InvalidConfig,
      `Invalid "metadata.annotations" in "${path}": must map names to strings`,
    );
  }
  const m: Manifest = { annotations: annotations as Record<string, string> };
  const labels = meta.labels;
  if (labels !== undefined && labels !== null) {
    if (
      typeof labels !== "object" || Array.isArray(labels) ||
      Object.values(labels).some((v) => typeof v !== "string")
    ) {
      throw new CniError(
        Code.InvalidConfig,
        `Invalid "metadata.labels" in "${path}": must map names to strings`,
      );
    }
    m.labels = labels as Record<string, string>;
  }
  if (typeof meta.name === "string") m.name = meta.name;
  if (typeof meta.namespace === "string") m.namespace = meta.namespace;
  return m;
}
