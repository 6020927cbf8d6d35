/**
 * What the standalone mode remembers about the pods it brought up, beside the meta-plugin's
 * own state: the pod's name and namespace, its netns and whether podplex created it (so
 * `pod down` removes only what it made), and the final ADD result (what libcni caches for
 * DEL and CHECK's prevResult).
 *
 * One file per pod in `<stateDir>/standalone/` (0700 dir, 0600 files); the meta-plugin's
 * store lists only the files directly in stateDir, so the two never mix.
 *
 * @module
 */
import { CniError, Code } from "../conf/errors.ts";
import { writeAtomic } from "../meta/state.ts";

/** One pod of the standalone mode. */
export interface PodRecord {
  version: 1;
  name: string;
  namespace: string;
  containerId: string;
  netns: string;
  /** podplex created the netns (and removes it on `pod down`). */
  ownsNetns: boolean;
  ifname: string;
  cniArgs: string;
  capabilityArgs: Record<string, unknown>;
  /** The final ADD result in the conflist's version. */
  result: Record<string, unknown>;
  createdAt: string;
}

const POD_NAME = /^[a-z0-9A-Z]([a-zA-Z0-9_.\-]{0,251})$/;

/**
 * Checks a pod name or namespace given on the command line.
 *
 * @throws {CniError} code 7 naming the value
 */
export function checkPodName(what: "pod name" | "namespace", value: string): string {
  if (!POD_NAME.test(value)) {
    throw new CniError(
      Code.InvalidConfig,
      `Invalid ${what} "${value}": must start with a letter or digit and hold only letters, ` +
        `digits, "_", "." and "-"`,
    );
  }
  return value;
}

/**
 * The CNI_CONTAINERID of a standalone pod: `podplex-<namespace>-<name>`, every character
 * outside the spec's `[a-zA-Z0-9_.-]` replaced by `_`.
 */
export function containerIdFor(namespace: string, name: string): string {
  return `podplex-${namespace}-${name}`.replace(/[^a-zA-Z0-9_.\-]/g, "_");
}

/** The CNI_ARGS a Kubernetes runtime would send for the pod. */
export function cniArgsFor(namespace: string, name: string): string {
  return `IgnoreUnknown=1;K8S_POD_NAMESPACE=${namespace};K8S_POD_NAME=${name}`;
}

/** The record store in `<stateDir>/standalone`. */
export interface PodRecords {
  dir: string;
  load(containerId: string): Promise<PodRecord | null>;
  save(r: PodRecord): Promise<void>;
  remove(containerId: string): Promise<void>;
  list(): Promise<PodRecord[]>;
}

/** Opens the record store of a stateDir. */
export function podRecords(stateDir: string): PodRecords {
  const dir = `${stateDir}/standalone`;
  const file = (id: string) => `${dir}/${id}.json`;
  async function read(path: string): Promise<PodRecord | null> {
    try {
      const r = JSON.parse(await Deno.readTextFile(path));
      return r?.version === 1 && typeof r.containerId === "string" ? r : null;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof SyntaxError) return null;
      throw CniError.wrap(e, Code.IoFailure, `Cannot read "${path}"`);
    }
  }
  return {
    dir,
    load: (id) => read(file(id)),
    async save(r) {
      await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
      await Deno.chmod(stateDir, 0o700);
      await writeAtomic(file(r.containerId), JSON.stringify(r));
    },
    async remove(id) {
      await Deno.remove(file(id)).catch((e) => {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      });
    },
    async list() {
      const out: PodRecord[] = [];
      try {
        for await (const e of Deno.readDir(dir)) {
          if (!e.isFile || !e.name.endsWith(".json") || e.name.startsWith(".")) continue;
          const r = await read(`${dir}/${e.name}`);
          if (r) out.push(r);
        }
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      return out.sort((a, b) =>
        `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`)
      );
    },
  };
}
