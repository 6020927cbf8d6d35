/**
 * `podplex net validate`: checks network definition files as the meta-plugin will read them
 * (plain confs, conflists, NetworkAttachmentDefinitions; YAML or JSON) and each plugin's
 * fields with the built-in delegate's own parser, collecting every error with its file and
 * field path instead of stopping at the first.
 *
 * @module
 */
import { readBoundedTextSync } from "../conf/bounded_read.ts";
import { parseConfOrList } from "../conf/netconf.ts";
import { parseYaml } from "../conf/yaml.ts";
import { BUILTINS } from "../delegates/catalog.ts";
import { isObject } from "../conf/json.ts";

/** One problem in one file. */
export interface Problem {
  file: string;
  /** The field path inside the file (`spec.config.plugins[1].ipam`), or "" for the file. */
  path: string;
  message: string;
}

/** The extensions the resolver reads, in its order. */
export const DEFINITION_EXTENSIONS = ["yaml", "yml", "json", "conf", "conflist"] as const;

type Obj = Record<string, unknown>;

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** `<ns>/<name>.<ext>` → its namespace, name and extension, as the resolver names files. */
export function definitionName(file: string): { namespace: string; name: string; ext: string } {
  const parts = file.split("/");
  const base = parts[parts.length - 1];
  const dot = base.lastIndexOf(".");
  return {
    namespace: parts.length > 1 ? parts[parts.length - 2] : "",
    name: dot > 0 ? base.slice(0, dot) : base,
    ext: dot > 0 ? base.slice(dot + 1) : "",
  };
}

async function parseText(text: string, ext: string): Promise<unknown> {
  if (ext === "yaml" || ext === "yml") {
    return await parseYaml(text);
  }
  return JSON.parse(text);
}

/** Checks a NAD's metadata against its file name; returns its spec.config object. */
function nadConfig(def: Obj, file: string, problems: Problem[]): Obj | undefined {
  const { namespace, name } = definitionName(file);
  const meta = isObject(def.metadata) ? def.metadata : {};
  for (const [key, want] of [["name", name], ["namespace", namespace]] as const) {
    if (meta[key] !== undefined && meta[key] !== want) {
      const msg = `is ${JSON.stringify(meta[key])}, but the file says "${want}"`;
      problems.push({ file, path: `metadata.${key}`, message: msg });
    }
  }
  const spec = isObject(def.spec) ? def.spec : {};
  if (spec.config === undefined || spec.config === "") {
    // Valid: the conf is then looked up by name in confDir at ADD time.
    return undefined;
  }
  if (typeof spec.config !== "string") {
    problems.push({ file, path: "spec.config", message: "must be a string holding a CNI conf" });
    return undefined;
  }
  try {
    const conf = JSON.parse(spec.config);
    if (isObject(conf)) return conf;
    problems.push({ file, path: "spec.config", message: "is not a JSON object" });
  } catch (e) {
    problems.push({ file, path: "spec.config", message: `is not JSON: ${messageOf(e)}` });
  }
  return undefined;
}

/** Checks each plugin (and its IPAM) with the built-in parser of its type. */
async function checkPlugins(conf: Obj, file: string, at: string, problems: Problem[]) {
  let list;
  try {
    list = parseConfOrList(JSON.stringify(conf));
  } catch (e) {
    problems.push({ file, path: at, message: messageOf(e) });
    return;
  }
  const isList = Array.isArray(conf.plugins);
  for (const [i, p] of list.plugins.entries()) {
    const where = [at, isList ? `plugins[${i}]` : ""].filter((s) => s).join(".");
    const raw = { ...p.conf, name: list.name, cniVersion: list.cniVersion } as Obj;
    const types = [p.type];
    const ipamType = (raw.ipam as Obj | undefined)?.type;
    if (typeof ipamType === "string") types.push(ipamType);
    for (const type of types) {
      if (!Object.hasOwn(BUILTINS, type)) continue; // an external binary: its own business
      try {
        (await BUILTINS[type]()).parseConf(raw);
      } catch (e) {
        const path = type === p.type ? where : [where, "ipam"].filter((s) => s).join(".");
        problems.push({ file, path, message: messageOf(e) });
      }
    }
  }
}

/**
 * Validates one network definition file.
 *
 * @returns every problem found (empty when the file is valid)
 */
export async function validateDefinition(file: string): Promise<Problem[]> {
  const problems: Problem[] = [];
  const { name, ext } = definitionName(file);
  if (!(DEFINITION_EXTENSIONS as readonly string[]).includes(ext)) {
    const exts = DEFINITION_EXTENSIONS.map((e) => `.${e}`).join(", ");
    return [{ file, path: "", message: `Not read as a network definition: not one of ${exts}` }];
  }
  let def: unknown;
  try {
    const text = readBoundedTextSync(file, { what: "network definition" });
    if (text === null) return [{ file, path: "", message: "No such file" }];
    def = await parseText(text, ext);
  } catch (e) {
    return [{ file, path: "", message: messageOf(e).split("\n")[0] }];
  }
  if (!isObject(def)) return [{ file, path: "", message: "Not an object" }];
  const nad = def.kind === "NetworkAttachmentDefinition" ||
    (isObject(def.spec) && isObject(def.metadata));
  const conf = nad ? nadConfig(def, file, problems) : def;
  if (!conf) return problems;
  // A definition without a name takes the file's (or the NAD's) name, as the resolver does.
  const named = conf.name === undefined ? { name, ...conf } : conf;
  await checkPlugins(named, file, nad ? "spec.config" : "", problems);
  return problems;
}

/** Every definition file under `networksDir/<ns>/`, sorted. */
export async function definitionFiles(networksDir: string): Promise<string[]> {
  const files: string[] = [];
  let namespaces: Deno.DirEntry[];
  try {
    namespaces = await Array.fromAsync(Deno.readDir(networksDir));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return files;
    throw e;
  }
  for (const ns of namespaces.filter((e) => e.isDirectory)) {
    for await (const f of Deno.readDir(`${networksDir}/${ns.name}`)) {
      if (f.isDirectory || f.name.startsWith(".")) continue;
      files.push(`${networksDir}/${ns.name}/${f.name}`);
    }
  }
  return files.sort();
}
